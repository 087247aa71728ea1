package wxtoken

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/internal/logbuf"
)

// rotatingSource issues tokens that carry a new refresh token each time, as an
// Open Platform authorizer with rotation does.
type rotatingSource struct {
	mu sync.Mutex
	n  int
}

func (s *rotatingSource) Fetch(ctx context.Context, req FetchRequest) (Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	return Token{AccessToken: "access-" + strings.Repeat("x", s.n), ExpiresIn: 7200,
		Refresh: "refresh-" + strings.Repeat("r", s.n)}, nil
}

// flakySaves is a MemoryStore whose next saves fail.
type flakySaves struct {
	*MemoryStore
	mu    sync.Mutex
	fails int
	saves int
}

var errSaveDown = errors.New("store down")

func (s *flakySaves) Save(ctx context.Context, key string, tok Token) error {
	s.mu.Lock()
	s.saves++
	fail := s.fails > 0
	if fail {
		s.fails--
	}
	s.mu.Unlock()
	if fail {
		return errSaveDown
	}
	return s.MemoryStore.Save(ctx, key, tok)
}

func TestFailedSaveOfRefreshRecordIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &flakySaves{MemoryStore: NewMemoryStore(), fails: 3}
		logs := &logbuf.Buffer{}
		c, err := NewClient("acct.authorizer", &rotatingSource{}, WithStore(store), WithLogger(logs.Logger(slog.LevelInfo)))
		require.NoError(t, err)
		defer c.Close()

		tok, err := c.Token(t.Context())
		require.NoError(t, err)
		require.Equal(t, "refresh-r", tok.Refresh)
		_, err = store.Load(t.Context(), "acct.authorizer")
		require.ErrorIs(t, err, ErrNotFound, "the first save failed")

		// Fake time: three retries after 1 s, 2 s and 4 s, each stretched by up
		// to half again.
		time.Sleep(3 * (saveRetryBase + 2*saveRetryBase + 4*saveRetryBase) / 2)
		synctest.Wait()
		saved, err := store.Load(t.Context(), "acct.authorizer")
		require.NoError(t, err)
		assert.Equal(t, tok.Refresh, saved.Refresh, "the retried save stored the refresh token")
		assert.Equal(t, 4, store.saves, "one save and three retries")
		assert.Contains(t, logs.String(), "level=ERROR", "a lost save is an error")
	})
}

func TestCloseMakesOneLastSaveOfRefreshRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &flakySaves{MemoryStore: NewMemoryStore(), fails: 1}
		c, err := NewClient("acct.authorizer", &rotatingSource{}, WithStore(store), WithLogger(slog.New(slog.DiscardHandler)))
		require.NoError(t, err)
		tok, err := c.Token(t.Context())
		require.NoError(t, err)
		require.NoError(t, c.Close()) // before the first retry is due
		saved, err := store.Load(context.Background(), "acct.authorizer")
		require.NoError(t, err, "Close waited for a last attempt")
		assert.Equal(t, tok.Refresh, saved.Refresh)
	})
}
