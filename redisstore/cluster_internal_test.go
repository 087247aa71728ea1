package redisstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
)

// replyError is an answer from Redis, as go-redis types them.
type replyError string

func (e replyError) Error() string { return string(e) }
func (e replyError) RedisError()   {}

func TestNodeFailedTellsSilentNodesFromAnswers(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for err, want := range map[error]bool{
		nil:       false,
		redis.Nil: false,
		replyError("ERR wrong number of arguments"):               false,
		replyError("NOSCRIPT No matching script"):                 false,
		replyError("CLUSTERDOWN The cluster is down"):             true,
		fmt.Errorf("redisstore: %w", replyError("CLUSTERDOWN x")): true,
		refused:                   true,
		io.EOF:                    true,
		context.DeadlineExceeded:  true,
		errors.New("i/o timeout"): true,
	} {
		assert.Equal(t, want, nodeFailed(err), "%v", err)
	}
}
