package wxtoken_test

// The fleet simulation: a day in the life of a service with several replicas,
// each calling a WeChat business API through a Transport, all in fake time
// (testing/synctest) against the wxtest fake. It measures what the library is
// for: how many tokens the fleet fetches in a day, and how many token
// rejections still reach the callers after the Transport's one retry.
//
// Fleet A shares a real Redis (redisstore on a redis-server of its own), and
// must stay within the physical floor: a token lives 7200 s and is renewed
// 300 s early, so a day needs 24 h / 6900 s = 12.5, that is 13, fetches. Fleet
// B gives each replica its own MemoryStore, as services without a shared cache
// do; every fetch there supersedes the other replicas' tokens, and its numbers
// show what the shared store saves.
//
// Redis inside the synctest bubble works: go-redis dials and talks to the
// server from bubble goroutines. A goroutine waiting on a socket is not
// durably blocked, so the fake clock stands still during each Redis round
// trip, which is what we want (Redis answers in microseconds of real time). The
// sockets' deadlines are real-time runtime timers, not fake ones, so they do
// not fire when the fake clock jumps hours ahead. Redis's own TTLs (the token
// key's, the lock lease) run in real time too; that is harmless because the
// Clients judge a token's age by their own (fake) clock and a lock is held for
// the milliseconds of one in-process fetch. Each go-redis client is created
// inside the bubble and closed before it ends, after the Clients using it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/internal/redistest"
	"github.com/wxtoken/wxtoken/redisstore"
	"github.com/wxtoken/wxtoken/wxtest"
)

const (
	fleetReplicas = 8
	fleetCallers  = 4               // goroutines calling the business API in each replica
	fleetEvery    = 2 * time.Minute // mean pause between one caller's calls: a call per replica every 30 s
	fleetStagger  = 5 * time.Second // mean delay between two replicas' starts

	// fleetMaxRejectedFetches bounds a day's fetches for a fleet whose
	// business API rejects every token.
	fleetMaxRejectedFetches = 50
)

// fleetDay is how long a simulated day lasts: a whole one, or a quarter of
// one under -short.
func fleetDay() time.Duration {
	if testing.Short() {
		return 6 * time.Hour
	}
	return 24 * time.Hour
}

// fleetMaxFetches is the goal for a fleet sharing a store: the first fetch,
// then one renewal per 7200 s - 300 s (less the jitter) over the rest of the
// day: 13 for a whole day.
func fleetMaxFetches() int {
	return int(fleetDay()/(6870*time.Second)) + 1
}

// fleetReport is what one simulated day produced.
type fleetReport struct {
	fetches      int         // requests to /cgi-bin/token, as wxtest counted them
	refused      int         // of them, the ones that gave no token (the Clients' FetchFailures)
	perReplica   []int64     // the Clients' own fetch counts
	upstream     int         // token rejections WeChat answered, including those the Transport's retry absorbed
	calls        int         // business calls made by the callers
	ok           int         // of them, answered with no errcode
	rejected     map[int]int // of them, answered with a token rejection (40001, 40014, 42001), by errcode
	otherErrcode int         // answered with another errcode
	failed       int         // ended with an error from the http.Client: no token could be had
	firstErr     string      // the first such error, for the log
	firstErrAt   time.Time   // and when it happened
}

// rejections returns how many calls got a token rejection back.
func (r fleetReport) rejections() int {
	n := 0
	for _, v := range r.rejected {
		n += v
	}
	return n
}

func (r fleetReport) String() string {
	return fmt.Sprintf("token fetches %d (%d refused, by replica %v); business calls %d: ok %d, "+
		"token rejected %d %v (WeChat rejected %d, the Transport's retry absorbed the rest), other errcode %d, failed %d",
		r.fetches, r.refused, r.perReplica, r.calls, r.ok,
		r.rejections(), r.rejected, r.upstream, r.otherErrcode, r.failed)
}

// fleetTally collects the callers' outcomes from their goroutines.
type fleetTally struct {
	mu  sync.Mutex
	rep fleetReport
}

func (ft *fleetTally) record(errcode int, err error) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	r := &ft.rep
	r.calls++
	switch {
	case err != nil:
		r.failed++
		if r.firstErr == "" {
			r.firstErr, r.firstErrAt = err.Error(), time.Now()
		}
	case errcode == 0:
		r.ok++
	case errcode == wxtest.CodeInvalidCredential || errcode == 40014 || errcode == wxtest.CodeTokenExpired:
		r.rejected[errcode]++
	default:
		r.otherErrcode++
	}
}

// TestFleetSimulatedDay runs both fleets for a simulated day, side by side,
// and compares them.
func TestFleetSimulatedDay(t *testing.T) {
	var shared, own fleetReport
	t.Cleanup(func() { // after both fleets, which run in parallel
		if shared.calls == 0 || own.calls == 0 {
			return // one was skipped or failed early
		}
		t.Logf("one day, %d replicas: shared Redis %d token fetches and %d rejections reaching callers; own MemoryStores %d fetches (%d refused) and %d rejections, %d calls without a token",
			fleetReplicas, shared.fetches, shared.rejections(), own.fetches, own.refused, own.rejections(), own.failed)
		assert.Greater(t, own.fetches, shared.fetches)
		assert.Greater(t, own.rejections(), shared.rejections())
	})
	t.Run("SharedRedis", func(t *testing.T) {
		t.Parallel()
		rs := redistest.Start(t) // outside the bubble: it runs a process and polls in real time
		synctest.Test(t, func(t *testing.T) {
			shared = runFleet(t, nil, func(t *testing.T, i int) wxtoken.Store {
				// A connection pool per replica, as separate processes would
				// have. NewClient closes it in the bubble's cleanup, after the
				// Clients using it, which runFleet closes itself.
				return redisstore.New(rs.NewClient(t), redisstore.WithPrefix("fleet:"))
			})
		})
		t.Logf("fleet A, %d replicas sharing Redis: %v", fleetReplicas, shared)
		assert.LessOrEqual(t, shared.fetches, fleetMaxFetches(), "the fleet fetched more tokens than a day needs")
		assert.GreaterOrEqual(t, shared.fetches, fleetMaxFetches()-1, "too few fetches: tokens cannot have stayed valid all day")
		assert.Zero(t, shared.rejections(), "token rejections reached callers")
		// Stronger: every replica moved to each new token inside WeChat's
		// five-minute overlap, so the Transport never even needed its retry.
		assert.Zero(t, shared.upstream, "WeChat rejected tokens the replicas sent")
		assert.Zero(t, shared.failed, "calls failed: %s", shared.firstErr)
		assert.Zero(t, shared.otherErrcode)
		assert.Equal(t, shared.calls, shared.ok)
	})
	t.Run("OwnMemoryStores", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			own = runFleet(t, nil, func(*testing.T, int) wxtoken.Store { return wxtoken.NewMemoryStore() })
		})
		t.Logf("fleet B, %d replicas each with its own MemoryStore: %v", fleetReplicas, own)
		if own.firstErr != "" {
			t.Logf("fleet B, first failed call: %s", own.firstErr)
			assert.NotContains(t, own.firstErr, secret, "an error reaching callers holds the app secret")
		}
		// Without a shared store every replica fetches for itself and each
		// fetch supersedes the others' tokens: far more fetches, and rejections.
		assert.Greater(t, own.fetches, fleetReplicas*fleetMaxFetches(), "replicas on their own must fetch more than one fleet-wide schedule each")
		assert.Positive(t, own.rejections(), "replicas on their own must see each other's fetches reject their tokens")
	})
}

// A fleet on a shared Redis whose business API rejects every token (the
// wrong account, an API it may not call): the rejection backoff, shared
// through the records in Redis, keeps the day's token fetches to a few dozen,
// and every caller still gets WeChat's 40001 answer.
func TestFleetSimulatedDayAgainstARejectingAPI(t *testing.T) {
	rs := redistest.Start(t)
	var rep fleetReport
	synctest.Test(t, func(t *testing.T) {
		rejectAll := func(srv *wxtest.Server) {
			for _, path := range []string{wxtest.PathCallbackIP, wxtest.PathCustomSend} {
				srv.InjectN(1<<30, wxtest.FaultErrcode(wxtest.CodeInvalidCredential, "invalid credential").On(path))
			}
		}
		rep = runFleet(t, rejectAll, func(t *testing.T, i int) wxtoken.Store {
			return redisstore.New(rs.NewClient(t), redisstore.WithPrefix("rejecting:"))
		})
	})
	t.Logf("%s, %d replicas sharing Redis, every token rejected: %v", fleetDay(), fleetReplicas, rep)
	assert.LessOrEqual(t, rep.fetches, fleetMaxRejectedFetches, "token fetches in the day")
	assert.Equal(t, rep.calls, rep.rejected[wxtest.CodeInvalidCredential], "every caller got WeChat's 40001")
	assert.Zero(t, rep.failed, "calls failed: %s", rep.firstErr)
}

// runFleet runs fleetReplicas Clients, each with the Store storeFor returns,
// for fleetDay of fake time, and reports what happened. It must run inside a
// synctest bubble. Replicas start a few seconds apart; each has fleetCallers
// goroutines that call a business API through a Transport about every
// fleetEvery, with jitter, alternating between a GET and a POST with a body.
func runFleet(t *testing.T, prepare func(*wxtest.Server), storeFor func(t *testing.T, i int) wxtoken.Store) fleetReport {
	srv := wxtest.NewHandler()
	if prepare != nil {
		prepare(srv)
	}
	start := time.Now()
	end := start.Add(fleetDay())
	tally := &fleetTally{rep: fleetReport{rejected: map[int]int{}}}
	// Seeded, so that both fleets see the same starts and call times; the
	// library's own jitter and the goroutines' interleaving still vary.
	rng := rand.New(rand.NewPCG(1, 2))
	clients := make([]*wxtoken.Client, fleetReplicas)
	var wg sync.WaitGroup
	for i := range clients {
		if i > 0 {
			time.Sleep(fleetStagger/2 + randDuration(rng, fleetStagger)) // fake time: replica i starts now
		}
		clients[i] = newReplica(t, srv, storeFor(t, i))
		hc := wxtoken.NewHTTPClient(clients[i], srv.Transport())
		for j := range fleetCallers {
			seed := rng.Uint64()
			wg.Go(func() { fleetCaller(t.Context(), hc, srv.URL(), end, seed, j, tally) })
		}
	}
	time.Sleep(time.Until(end))
	// At the end of the day exactly, before any later renewal.
	fetches := srv.TokenCalls()
	rejections := srv.Rejections()
	wg.Wait()

	var clientFetches, refused int64
	perReplica := make([]int64, len(clients))
	for i, c := range clients {
		st := c.Stats()
		perReplica[i] = st.Fetches
		clientFetches += st.Fetches
		refused += st.FetchFailures
		require.NoError(t, c.Close())
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	rep := tally.rep
	rep.fetches, rep.refused, rep.perReplica = fetches, int(refused), perReplica
	for _, code := range []int{wxtest.CodeInvalidCredential, 40014, wxtest.CodeTokenExpired} {
		rep.upstream += rejections[code]
	}
	if rep.firstErr != "" {
		rep.firstErr = fmt.Sprintf("after %v: %s", rep.firstErrAt.Sub(start), rep.firstErr)
	}
	// The Clients count their own fetches; they must agree with WeChat's count.
	assert.EqualValues(t, srv.TokenCalls(), clientFetches, "the Clients' fetch count differs from the fake's")
	return rep
}

// fleetCaller calls the business API from a random moment of the first
// interval until end, pausing between calls for fleetEvery on average.
func fleetCaller(ctx context.Context, hc *http.Client, baseURL string, end time.Time, seed uint64, n int, tally *fleetTally) {
	rng := rand.New(rand.NewPCG(seed, uint64(n)))
	time.Sleep(randDuration(rng, fleetEvery))
	for i := n; time.Now().Before(end); i++ {
		code, err := fleetCall(ctx, hc, baseURL, i%2 == 0)
		tally.record(code, err)
		time.Sleep(fleetEvery/2 + randDuration(rng, fleetEvery))
	}
}

// fleetCall makes one business call and returns the errcode WeChat answered
// (0 for success), as the caller sees it after the Transport's retry.
func fleetCall(ctx context.Context, hc *http.Client, baseURL string, post bool) (int, error) {
	method, url, body := http.MethodGet, baseURL+wxtest.PathCallbackIP, io.Reader(nil)
	if post {
		method, url = http.MethodPost, baseURL+wxtest.PathCustomSend
		body = strings.NewReader(`{"touser":"OPENID","msgtype":"text","text":{"content":"hello"}}`)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var answer struct {
		Errcode int `json:"errcode"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return 0, fmt.Errorf("business answer %q: %w", raw, err)
	}
	return answer.Errcode, nil
}

// randDuration returns a duration in [0, d) drawn from rng.
func randDuration(rng *rand.Rand, d time.Duration) time.Duration {
	return time.Duration(rng.Int64N(int64(d)))
}
