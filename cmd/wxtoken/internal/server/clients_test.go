package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBucketSpendsItsBurstThenRefillsAtItsRate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	b := newBucket(2, 3, t0) // 2 a second, 3 at once
	for i := range 3 {
		ok, _ := b.take(t0)
		assert.True(t, ok, "burst %d", i)
	}
	ok, wait := b.take(t0)
	assert.False(t, ok)
	assert.Equal(t, 500*time.Millisecond, wait, "one token comes back in 1/rate")

	ok, _ = b.take(t0.Add(499 * time.Millisecond))
	assert.False(t, ok)
	ok, _ = b.take(t0.Add(500 * time.Millisecond))
	assert.True(t, ok)

	// A long pause refills up to the burst, no more.
	later := t0.Add(time.Hour)
	for i := range 3 {
		ok, _ := b.take(later)
		assert.True(t, ok, "refilled %d", i)
	}
	ok, _ = b.take(later)
	assert.False(t, ok)

	// A clock that steps back neither refills nor panics.
	ok, _ = b.take(t0)
	assert.False(t, ok)
}

func TestHTTPServerHasEveryTimeout(t *testing.T) {
	t.Parallel()
	f := start(t, func(c *Config) {
		c.Timeouts = TimeoutsConfig{ReadHeader: time.Second, Read: 2 * time.Second, Write: 40 * time.Second,
			Idle: 4 * time.Second, Request: 30 * time.Second, Upstream: 25 * time.Second}
	})
	assert.Equal(t, 25*time.Second, f.srv.httpClient.Timeout, "timeouts.upstream bounds each call to WeChat")
	assert.Equal(t, 40*time.Second, f.srv.cfg.Timeouts.Shutdown, "unset, above the request timeout")
	hs := f.srv.HTTPServer()
	assert.Equal(t, time.Second, hs.ReadHeaderTimeout)
	assert.Equal(t, 2*time.Second, hs.ReadTimeout)
	assert.Equal(t, 40*time.Second, hs.WriteTimeout)
	assert.Equal(t, 4*time.Second, hs.IdleTimeout)
	assert.Equal(t, 16<<10, hs.MaxHeaderBytes)
	assert.NotNil(t, hs.ErrorLog)
}
