package wxtoken

import "errors"

var (
	// ErrNotFound is returned by a Store's Load when the key holds no token.
	ErrNotFound = errors.New("wxtoken: token not found in store")
	// ErrNewerToken is returned by a Store's Save when the store already holds a
	// token newer than the one offered; the stored token is kept.
	ErrNewerToken = errors.New("wxtoken: store holds a newer token")
	// ErrCorrupt is matched by the error a Store returns when the record under a
	// key cannot be decoded. The Client treats it as a miss and logs it; the next
	// Save replaces the record.
	ErrCorrupt = errors.New("wxtoken: stored token is corrupt")
	// ErrInvalidToken is matched by the error Token.Validate returns.
	ErrInvalidToken = errors.New("wxtoken: invalid token")
	// ErrClosed is returned by every method of a Client after Close.
	ErrClosed = errors.New("wxtoken: client closed")
)
