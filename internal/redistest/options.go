package redistest

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// StartPersistent is Start with an append-only file (appendonly yes,
// appendfsync always) in the server's folder, so that what was written
// survives Stop and Restart, as on a production Redis configured for it.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	p, err := launchWith(t.TempDir(), "--appendonly", "yes", "--appendfsync", "always")
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v, and CI is set: install it (.ci/run does so with apt-get)", err)
		}
		t.Skip("redis-server not installed; install it to run the Redis tests (CI fails instead of skipping)")
	}
	if err != nil {
		t.Fatal(err)
	}
	p.logf = t.Logf
	t.Cleanup(p.Stop)
	return &Server{Process: p, t: t}
}

// launchWith is Launch with settings after the defaults (later ones win).
func launchWith(dir string, args ...string) (*Process, error) {
	p, err := Launch(dir)
	if err != nil {
		return nil, err
	}
	p.Stop()
	p.args = args
	if err := p.Restart(); err != nil {
		return nil, fmt.Errorf("redistest: start with %v: %w", args, err)
	}
	return p, nil
}
