package wxtoken

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken/wxtest"
)

// Clearing the quotas opens the gate that 45009 shut: the next call fetches at
// once instead of waiting out the cool-down.
func TestClearQuotaReopensTheGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := wxtest.NewHandler(wxtest.WithDailyQuota(1))
		c, err := New(wxtest.DefaultAppID, wxtest.DefaultSecret, WithBaseURL(srv.URL()),
			WithHTTPClient(srv.Client()), WithStore(NewMemoryStore()), WithLogger(quietLogger()))
		require.NoError(t, err)
		defer c.Close()
		first := mustGet(t, c)
		time.Sleep(time.Minute)
		_, err = c.Invalidate(context.Background(), first)
		require.True(t, IsQuota(err), "got %v", err)

		require.NoError(t, c.ClearQuotaV2(context.Background()))
		next, err := c.Invalidate(context.Background(), first)
		require.NoError(t, err, "no cool-down left after the quotas were cleared")
		assert.NotEqual(t, first, next)
	})
}
