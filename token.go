package wxtoken

import (
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
