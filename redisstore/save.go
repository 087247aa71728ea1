package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/wxtoken/wxtoken"
)

// swapAttempts bounds how often Save reads and tries again when the record
// changed between its read and its write. Each lost race means another Save
// wrote a token newer than the one read, so the newest token loses few.
const swapAttempts = 8

// errContended is returned when every attempt of a Save lost its race.
var errContended = errors.New("the record changed under every attempt")

// Save stores tok under key with a Redis TTL equal to its remaining lifetime,
// or none when tok has a Refresh token: that record is what obtains the next
// credential, and must live as long as Redis keeps its data.
// It refuses, with an error matching wxtoken.ErrNewerToken, when key holds a
// token that is newer by wxtoken.Token.NewerThan; a value that Load would
// report as corrupt is replaced. Save decides in Go on what it read, then
// writes only if the key still holds exactly that, trying again a few times
// when another writer came between. A token that fails Validate or has
// already expired is not written, and the error matches
// wxtoken.ErrInvalidToken. The whole Save is bounded by the Store's timeout.
func (s *Store) Save(ctx context.Context, key string, tok wxtoken.Token) error {
	raw, ttl, err := s.encode(tok)
	if err != nil {
		return fmt.Errorf("redisstore: save %q: %w", key, err)
	}
	_, err = call(ctx, s, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, s.save(ctx, key, tok, raw, ttl)
	}, nil)
	if err != nil {
		return fmt.Errorf("redisstore: save %q: %w", key, err)
	}
	return nil
}

// encode returns the record of tok and its TTL in milliseconds (0: none), or
// why tok may not be stored.
func (s *Store) encode(tok wxtoken.Token) (raw string, ttl int64, err error) {
	if err := tok.Validate(); err != nil {
		return "", 0, err
	}
	// Redis rejects a zero TTL and a negative one deletes the key: an
	// expired token has no business in the store anyway.
	ttl = tok.ExpiresAt().Sub(s.now()).Milliseconds()
	switch {
	case tok.Refresh != "":
		ttl = 0 // no TTL
	case ttl <= 0:
		return "", 0, fmt.Errorf("%w: already expired", wxtoken.ErrInvalidToken)
	}
	b, err := json.Marshal(tok)
	if err != nil {
		return "", 0, fmt.Errorf("encode: %w", err)
	}
	return string(b), ttl, nil
}

// save is Save's compare-and-set loop on key's record.
func (s *Store) save(ctx context.Context, key string, tok wxtoken.Token, raw string, ttl int64) error {
	k := s.tokenKey(key)
	for range swapAttempts {
		cur, err := s.readRecord(ctx, k)
		if err != nil {
			return err
		}
		if cur.newerThan(tok, s.now()) {
			return wxtoken.ErrNewerToken
		}
		mode, want := cur.swapMode()
		wrote, err := s.swap.Run(ctx, s.rdb, []string{k}, mode, want, raw, ttl, s.channel(), key).Int()
		if err != nil {
			return err
		}
		if wrote == 1 {
			return nil
		}
	}
	return fmt.Errorf("%w (%d attempts)", errContended, swapAttempts)
}

// newerThan reports whether the record holds a token that a Save of tok at
// now must keep.
func (r record) newerThan(tok wxtoken.Token, now time.Time) bool {
	old, err := r.token()
	return err == nil && old.NewerThan(tok, now)
}

// swapMode returns the arguments that make swap write only while the key is
// still as r.
func (r record) swapMode() (mode, want string) {
	switch {
	case r.wrongType:
		return "wrongtype", ""
	case r.oversize():
		return "oversize", strconv.Itoa(MaxRecordLen)
	case r.found:
		return "equal", r.raw
	}
	return "absent", ""
}
