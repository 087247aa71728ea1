// Package wxtoken obtains, caches, persists and renews the access_token of a
// WeChat Official Account, so that a Go service calls Client.Get and never thinks
// about expiry, quotas, restarts or other replicas again.
//
//	client, err := wxtoken.New(appID, appSecret) // file cache by default
//	tok, err := client.Get(ctx)                  // fresh, cached, shared
//
// What a Client promises:
//
//   - A fresh token is returned through one atomic load: no lock, no clock read,
//     no I/O, no allocation. Timers set from the token's expiry, not callers,
//     decide when it turns stale and expired.
//   - Renewal runs ahead, at ExpiresAt minus min(WithRefreshBefore, ExpiresIn/2)
//     minus a small jitter, in the background, while callers keep getting the
//     current token. Only a missing or expired token makes callers wait.
//   - One fetch at a time: callers share a single flight in the process and,
//     where the Store implements Locker (FileStore, redisstore), across
//     processes and replicas, re-reading the Store after taking the lock.
//   - A restarted process reuses the token it saved, so it does not fetch (and
//     so does not supersede the token other processes still use).
//   - Failures are classified (IsRetryable, IsPermanent, IsQuota). Retryable
//     ones back off exponentially, permanent ones cool down (a minute, doubling
//     to ten while they repeat); in both cases callers share the failure instead
//     of calling WeChat again, and a token that is still valid keeps being served.
//   - A token a business API rejected (40001, 40014, 42001) is replaced through
//     Invalidate, or automatically by Transport, with one fetch however many
//     requests saw the rejection, and never in a loop.
//   - The app secret and full tokens appear in no error and no log line.
//   - Close stops every timer and waits for work under way; nothing outlives it.
package wxtoken
