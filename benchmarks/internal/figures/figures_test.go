package figures

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSummarize(t *testing.T) {
	d := make([]time.Duration, 0, 1000)
	for i := 1000; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	l := summarize(d, 990*time.Microsecond)
	assert.Equal(t, Latency{
		Calls:   1000,
		P50:     500 * time.Microsecond,
		P99:     990 * time.Microsecond,
		P999:    999 * time.Microsecond,
		Max:     1000 * time.Microsecond,
		Stalled: 10,
	}, l)
	assert.Equal(t, Latency{}, summarize(nil, time.Millisecond))
	assert.Equal(t, 7*time.Second, quantile([]time.Duration{7 * time.Second}, 0.999))
}
