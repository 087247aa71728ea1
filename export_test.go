package wxtoken

// WaitIdle waits until c has no shared fetch under way, nor the save that
// follows one: callers get their token before it is saved, so tests that look
// at the Store right after a call wait for this first.
func WaitIdle(c *Client) { c.waitIdle() }
