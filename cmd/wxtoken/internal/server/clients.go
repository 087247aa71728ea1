package server

import (
	"math"
	"sync"
	"time"
)

// client is one configured client: its name, what it may read, its bucket.
type client struct {
	name    string
	allowed map[string]bool
	limiter *bucket
}

// buildClients makes the keyring of the configured clients.
func (s *Server) buildClients() {
	for _, name := range sortedKeys(s.cfg.Clients) {
		cc := s.cfg.Clients[name]
		sum, _ := ParseKeyHash(cc.KeyHash) // Validate checked it
		c := &client{name: name, allowed: map[string]bool{},
			limiter: newBucket(cc.RateLimit.PerSecond, cc.RateLimit.Burst, s.now())}
		for _, cred := range cc.Credentials {
			c.allowed[cred] = true
		}
		s.keys.hashes = append(s.keys.hashes, sum)
		s.keys.clients = append(s.keys.clients, c)
	}
}

// bucket is a token bucket: rate tokens a second, up to burst.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int, now time.Time) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now}
}

// take spends one token, or reports how long until one is there.
func (b *bucket) take(now time.Time) (ok bool, wait time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(b.burst, b.tokens+elapsed.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	// Validate keeps rate within [minRate, maxRate]; the cap keeps the
	// conversion from overflowing whatever the rate.
	secs := (1 - b.tokens) / b.rate
	if !(secs < maxWaitSeconds) { // NaN too
		secs = maxWaitSeconds
	}
	return false, time.Duration(secs * float64(time.Second))
}

// maxWaitSeconds bounds a wait: what the slowest bucket allowed needs.
const maxWaitSeconds = 1 / minRate
