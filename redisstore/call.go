package redisstore

import (
	"context"
	"fmt"
)

// result carries what a Redis call returned across goroutines.
type result[T any] struct {
	v   T
	err error
}

// call runs fn with a context bounded by the Store's timeout and returns as
// soon as fn returns or that context ends, whichever comes first.
//
// fn runs on a goroutine of its own because go-redis does not let a context
// end a read unless the client was built with ContextTimeoutEnabled: with the
// default options a command to a paused server blocks for ReadTimeout and more,
// whatever its context says. When call gives up, fn finishes in the background
// within the client's own timeouts, and late, when not nil, receives what it
// returned, so that a lock taken too late can be given back.
func call[T any](ctx context.Context, s *Store, fn func(context.Context) (T, error), late func(T, error)) (T, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, s.timeout, s.slow)
	res := make(chan result[T])
	gaveUp := make(chan struct{})
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		defer cancel()
		v, err := recovered(ctx, fn)
		select {
		case res <- result[T]{v, err}:
		case <-gaveUp:
			if late != nil {
				late(v, err)
			}
		}
	}()
	select {
	case r := <-res:
		return r.v, r.err
	case <-ctx.Done():
		close(gaveUp)
		var zero T
		return zero, context.Cause(ctx)
	}
}

// recovered runs fn and turns a panic (in go-redis or in a hook the user
// added to the client) into an error: it would otherwise end the process from
// a goroutine nobody else can guard. The panic's value is left out, since it
// may quote a command's arguments.
func recovered[T any](ctx context.Context, fn func(context.Context) (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, fmt.Errorf("the Redis client panicked (%T)", r)
		}
	}()
	return fn(ctx)
}
