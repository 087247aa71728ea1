package logbuf

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestConcurrentWritesAreAllKept(t *testing.T) {
	const writers, lines = 8, 100
	var b Buffer
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				_, err := fmt.Fprintf(&b, "w%d-%d\n", w, i)
				assert.NoError(t, err)
				_ = b.String() // a reader racing the writers
			}
		})
	}
	wg.Wait()

	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	require.Len(t, got, writers*lines)
	seen := make(map[string]bool, len(got))
	for _, line := range got {
		seen[line] = true
	}
	for w := range writers {
		for i := range lines {
			assert.True(t, seen[fmt.Sprintf("w%d-%d", w, i)], "line w%d-%d lost or torn", w, i)
		}
	}
}

func TestLoggerHonoursLevel(t *testing.T) {
	for _, tc := range []struct {
		level     slog.Level
		keepDebug bool
	}{
		{slog.LevelDebug, true},
		{slog.LevelInfo, false},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var b Buffer
			l := b.Logger(tc.level)
			l.Debug("quiet")
			l.Warn("loud", "n", 1)
			assert.Equal(t, tc.keepDebug, strings.Contains(b.String(), "level=DEBUG msg=quiet"))
			warns := b.Warnings()
			require.Len(t, warns, 1)
			assert.Contains(t, warns[0], "level=WARN msg=loud n=1")
		})
	}
}

func TestEmptyBuffer(t *testing.T) {
	var b Buffer
	assert.Empty(t, b.String())
	assert.Empty(t, b.Warnings())
}
