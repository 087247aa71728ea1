package wxtoken

import "errors"

// ErrAwaitingInput is matched by a Source's error that says it cannot fetch
// yet because an input that WeChat pushes, and that the Source does not fetch
// itself, is missing: an Open Platform's component_verify_ticket. It is not
// WeChat failing, and the Source calls WeChat for nothing while the input is
// missing (asking for the input again is its own business, rate-limited by
// it). So the failure gate it shuts stops background renewals, which back off
// as after any retryable error, but not a caller with nothing valid to serve:
// such a caller runs the Source again once the last attempt is a second old
// (callers share the error meanwhile, so hammering Get costs one attempt a
// second, a few Store reads, and no call of WeChat), or at once when the
// Source's optional method
//
//	InputArrived() bool
//
// reports that the input has arrived since (in this process: a push received
// here); in another process the next attempt finds it in the Store.
// InputArrived is called with the Client's lock held: it must be cheap, do no
// I/O and never block.
var ErrAwaitingInput = errors.New("wxtoken: the source is waiting for an input WeChat pushes")

// awaitingInput reports whether err, the shut gate's failure, is a Source's
// ErrAwaitingInput.
func awaitingInput(err error) bool { return errors.Is(err, ErrAwaitingInput) }

// inputArrivedLocked reports whether err, the shut gate's failure, is a
// Source's ErrAwaitingInput whose input has arrived since, by the Source's
// InputArrived. The caller holds c.mu. A panic in InputArrived is logged and
// counts as no.
func (c *Client) inputArrivedLocked(err error) (arrived bool) {
	s, ok := c.src.(interface{ InputArrived() bool })
	if !ok || !awaitingInput(err) {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			// Not quoted: c.panicError takes c.mu, and the value may hold a secret.
			c.log.Error("wxtoken: recovered from a panic in Source.InputArrived", "appid", c.appID, "key", c.key)
			arrived = false
		}
	}()
	return s.InputArrived()
}
