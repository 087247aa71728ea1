package wxtoken

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pushedSource needs an input that arrives by itself (like a pushed verify
// ticket): without it, Fetch fails with ErrAwaitingInput and calls nothing.
type pushedSource struct {
	input    atomic.Bool // the input is there (in the Store, say)
	arrived  atomic.Bool // it arrived in this process since the last Fetch
	attempts atomic.Int64
	upstream atomic.Int64
}

func (s *pushedSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	s.arrived.Store(false)
	s.attempts.Add(1)
	if !s.input.Load() {
		return Token{}, fmt.Errorf("no input yet: %w", ErrAwaitingInput)
	}
	n := s.upstream.Add(1)
	return Token{AccessToken: fmt.Sprintf("pushed-%d", n), ExpiresIn: 7200, CreateTime: time.Now()}, nil
}

// localPushedSource is a pushedSource that knows when the input arrives here.
type localPushedSource struct{ *pushedSource }

func (s localPushedSource) InputArrived() bool { return s.arrived.Load() }

// Callers hammering Get for an hour while the input is missing cost one
// attempt a second at most and nothing upstream; once the input arrives in
// this process the very next Get has the token, however long the backoff
// that the failures built up.
func TestAwaitingInputArrivesHere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &pushedSource{}
		c, err := NewClient("pushed", localPushedSource{src}, WithStore(NewMemoryStore()), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer c.Close()
		for range 36000 { // an hour, ten calls a second
			_, err := c.Get(t.Context())
			require.ErrorIs(t, err, ErrAwaitingInput)
			require.True(t, IsRetryable(err))
			time.Sleep(100 * time.Millisecond)
		}
		assert.Zero(t, src.upstream.Load())
		assert.LessOrEqual(t, src.attempts.Load(), int64(3601), "one attempt a second at most")
		t.Logf("attempts in an hour of Get ten times a second: %d", src.attempts.Load())

		_, err = c.Get(t.Context()) // the attempt the next ones share
		require.ErrorIs(t, err, ErrAwaitingInput)
		src.input.Store(true)
		src.arrived.Store(true)
		got, err := c.Get(t.Context()) // no time passes: no wait at all
		require.NoError(t, err)
		assert.Equal(t, "pushed-1", got)
	})
}

// In a process that did not receive the input (no InputArrived), the next
// attempt, a second after the last, finds it: not the minute of backoff.
func TestAwaitingInputArrivesElsewhere(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := &pushedSource{}
		c, err := NewClient("pushed", src, WithStore(NewMemoryStore()), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer c.Close()
		for range 20 { // failures enough for the longest backoff
			_, err := c.Get(t.Context())
			require.ErrorIs(t, err, ErrAwaitingInput)
			time.Sleep(time.Second)
		}
		_, err = c.Get(t.Context())
		require.ErrorIs(t, err, ErrAwaitingInput)
		src.input.Store(true)
		_, err = c.Get(t.Context())
		require.ErrorIs(t, err, ErrAwaitingInput, "shared for up to a second")
		time.Sleep(time.Second)
		got, err := c.Get(t.Context())
		require.NoError(t, err)
		assert.Equal(t, "pushed-1", got)
		assert.EqualValues(t, 1, src.upstream.Load())
	})
}
