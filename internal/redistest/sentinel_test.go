package redistest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSentinelsAgreeOnTheMasterAndKnowItsReplica(t *testing.T) {
	s := StartSentinel(t)
	require.Len(t, s.SentinelAddrs(), 3)
	require.Len(t, s.DataAddrs(), 2)
	for _, a := range append(s.SentinelAddrs(), s.DataAddrs()...) {
		assert.Regexp(t, `^127\.0\.0\.1:\d+$`, a)
	}
	assert.Equal(t, s.DataAddrs()[0], s.Master())

	rdb := s.NewClient(t)
	ctx := t.Context()
	require.NoError(t, rdb.Set(ctx, "k", "v", 0).Err())
	s.WaitReplicated()
	got, err := withNode(ctx, s.DataAddrs()[1], func(ctx context.Context, rdb *redis.Client) (string, error) {
		return rdb.Get(ctx, "k").Result()
	})
	require.NoError(t, err)
	assert.Equal(t, "v", got, "the replica has the master's write")
}

// A killed master's replica is promoted by the sentinels, and a
// FailoverClient of FailoverOptions follows it with the data kept.
func TestSentinelKillMasterPromotesTheReplica(t *testing.T) {
	s := StartSentinel(t)
	rdb := s.NewClient(t)
	ctx := t.Context()
	require.NoError(t, rdb.Set(ctx, "k", "before", 0).Err())
	s.WaitReplicated()
	old := s.Master()

	s.Kill(old)
	require.Error(t, ping(old), "killed node must be down")
	s.Kill(old) // idempotent
	took := s.WaitHealthy()
	t.Logf("sentinels announced the promoted replica %v after SIGKILL (down-after %v)", took.Round(time.Millisecond), SentinelDownAfter)
	assert.Equal(t, s.DataAddrs()[1], s.Master(), "the replica is the master now")

	require.Eventually(t, func() bool {
		got, err := rdb.Get(ctx, "k").Result()
		return err == nil && got == "before"
	}, 10*time.Second, 10*time.Millisecond, "the client must follow the promotion with the key kept")
	require.NoError(t, rdb.Set(ctx, "k", "after", 0).Err(), "the promoted replica takes writes")
}

func TestSentinelStopLeavesNoProcess(t *testing.T) {
	var pids []int
	t.Run("sentinel", func(t *testing.T) {
		s := StartSentinel(t)
		for _, p := range append(s.data, s.sentinels...) {
			pid, err := p.Pid()
			require.NoError(t, err)
			pids = append(pids, pid)
		}
	})
	require.Len(t, pids, 5)
	for _, pid := range pids {
		out, _ := exec.Command("ps", "-o", "args=", "-p", strconv.Itoa(pid)).Output()
		assert.NotContains(t, string(out), "redis-server", "pid %d still runs", pid)
	}
}

func TestSentinelConfMonitorsTheMaster(t *testing.T) {
	path, err := writeSentinelConf(t.TempDir(), "127.0.0.1:6390")
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, `sentinel resolve-hostnames no
sentinel monitor m 127.0.0.1 6390 2
sentinel down-after-milliseconds m 1000
sentinel failover-timeout m 3000
sentinel parallel-syncs m 1
`, string(b))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	_, err = writeSentinelConf(t.TempDir(), "no port")
	require.Error(t, err)
}
