package redistest

import (
	"testing"
)

// StartPersistent is Start with an append-only file (appendonly yes,
// appendfsync always) in the server's folder, so that what was written
// survives Stop and Restart, as on a production Redis configured for it.
func StartPersistent(t testing.TB) *Server {
	t.Helper()
	persistent := func() ([]string, error) {
		return []string{"--appendonly", "yes", "--appendfsync", "always"}, nil
	}
	p, err := launch(t.TempDir(), persistent)
	skipIfNotInstalled(t, err, "redis-server")
	if err != nil {
		t.Fatal(err)
	}
	p.logf = t.Logf
	t.Cleanup(p.Stop)
	return &Server{Process: p, t: t}
}
