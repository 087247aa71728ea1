package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/wxtoken/wxtoken"
)

// record is a stored value as read through luaRead.
type record struct {
	found     bool   // the key exists
	wrongType bool   // it is not a string: a hash, a list, ... left by someone else
	size      int64  // its length, when it is over MaxRecordLen and was not read
	raw       string // its bytes otherwise
}

// oversize reports whether the value was too long to read.
func (r record) oversize() bool { return r.size > 0 }

// Load returns the token stored under key. The error matches
// wxtoken.ErrNotFound when there is none (Redis has also dropped it once it
// expired), and wxtoken.ErrCorrupt when the stored value is not a valid token,
// which includes a value over MaxRecordLen bytes (left unread); other errors
// come from Redis, and match context.DeadlineExceeded when it did not answer
// within the Store's timeout.
func (s *Store) Load(ctx context.Context, key string) (wxtoken.Token, error) {
	tok, err := call(ctx, s, func(ctx context.Context) (wxtoken.Token, error) {
		rec, err := s.readRecord(ctx, s.tokenKey(key))
		if err != nil {
			return wxtoken.Token{}, err
		}
		return rec.token()
	}, nil)
	if err != nil {
		return wxtoken.Token{}, fmt.Errorf("redisstore: load %q: %w", key, err)
	}
	return tok, nil
}

// readRecord reads the value of k without transferring more than MaxRecordLen bytes.
func (s *Store) readRecord(ctx context.Context, k string) (record, error) {
	return parseRecord(s.read.Run(ctx, s.rdb, []string{k}, MaxRecordLen).Result())
}

// parseRecord turns one reply of luaRead (or of an element of luaReadMany or
// luaLockRead, whose nil elements come with a nil err) into a record.
func parseRecord(v any, err error) (record, error) {
	switch v := v.(type) {
	case nil:
		if err == nil || errors.Is(err, redis.Nil) {
			return record{}, nil
		}
		return record{}, err
	case int64:
		if v < 0 {
			return record{found: true, wrongType: true}, nil
		}
		return record{found: true, size: v}, nil
	case string:
		return record{found: true, raw: v}, nil
	default:
		return record{}, fmt.Errorf("unexpected reply of type %T", v)
	}
}

// token decodes the record. The errors match wxtoken.ErrNotFound or
// wxtoken.ErrCorrupt.
func (r record) token() (wxtoken.Token, error) {
	switch {
	case !r.found:
		return wxtoken.Token{}, wxtoken.ErrNotFound
	case r.wrongType:
		return wxtoken.Token{}, fmt.Errorf("%w: the key holds no string", wxtoken.ErrCorrupt)
	case r.oversize():
		return wxtoken.Token{}, fmt.Errorf("%w: the value is %d bytes long, the limit is %d",
			wxtoken.ErrCorrupt, r.size, MaxRecordLen)
	}
	return decodeToken([]byte(r.raw))
}

// decodeToken parses a stored record: the one definition of a valid record
// that both Load and Save apply. Its errors match wxtoken.ErrCorrupt and never
// quote the record, which may hold a token.
func decodeToken(raw []byte) (wxtoken.Token, error) {
	if len(raw) > MaxRecordLen {
		return wxtoken.Token{}, fmt.Errorf("%w: the value is %d bytes long, the limit is %d",
			wxtoken.ErrCorrupt, len(raw), MaxRecordLen)
	}
	var tok wxtoken.Token
	if err := json.Unmarshal(raw, &tok); err != nil {
		return wxtoken.Token{}, fmt.Errorf("%w: not a JSON token record", wxtoken.ErrCorrupt)
	}
	if err := tok.Validate(); err != nil {
		return wxtoken.Token{}, fmt.Errorf("%w: %v", wxtoken.ErrCorrupt, err)
	}
	return tok, nil
}
