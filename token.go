package wxtoken

import (
	"fmt"
	"time"
)

// Token is one access_token as WeChat issued it. Its JSON form is the cache file
// format: {"createTime":"2020-12-11T03:05:48.123Z","access_token":"...","expires_in":7200}.
type Token struct {
	AccessToken string    `json:"access_token"`
	ExpiresIn   int64     `json:"expires_in"` // seconds, as WeChat returned them
	CreateTime  time.Time `json:"createTime"` // when it was obtained
}

// ExpiresAt reports when WeChat stops accepting the token.
func (t Token) ExpiresAt() time.Time {
	return t.CreateTime.Add(time.Duration(t.ExpiresIn) * time.Second)
}

// maxExpiresIn bounds the lifetimes a Token may claim. WeChat promises "within
// 7200 s"; a day leaves room for change while still catching a corrupt value
// that would otherwise schedule a refresh decades away.
const maxExpiresIn = 24 * 60 * 60

// Validate reports whether t can be used at all: it must have a token, a
// positive lifetime of at most a day, and a creation time. It says nothing about
// expiry. Stores use it to treat malformed records as corrupt rather than as tokens.
func (t Token) Validate() error {
	switch {
	case t.AccessToken == "":
		return fmt.Errorf("%w: empty access_token", ErrInvalidToken)
	case t.ExpiresIn <= 0:
		return fmt.Errorf("%w: expires_in %d is not positive", ErrInvalidToken, t.ExpiresIn)
	case t.ExpiresIn > maxExpiresIn:
		return fmt.Errorf("%w: expires_in %d exceeds %d", ErrInvalidToken, t.ExpiresIn, maxExpiresIn)
	case t.CreateTime.IsZero():
		return fmt.Errorf("%w: no createTime", ErrInvalidToken)
	}
	return nil
}
