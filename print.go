package wxtoken

import (
	"fmt"
	"log/slog"
	"strconv"
)

// String describes c by its appid and store key, such as
// "wxtoken.Client{appid: wx0123, key: wx0123.stable}"; it never shows the
// secret or a token. fmt's %v, %+v and %s use it.
func (c *Client) String() string {
	if c == nil {
		return "wxtoken.Client(nil)"
	}
	return "wxtoken.Client{appid: " + c.appID + ", key: " + c.key + "}"
}

// GoString is what %#v prints: the appid and store key only, as String.
func (c *Client) GoString() string {
	if c == nil {
		return "(*wxtoken.Client)(nil)"
	}
	return "&wxtoken.Client{appID:" + strconv.Quote(c.appID) + ", key:" + strconv.Quote(c.key) + "}"
}

// Format makes every verb print String (GoString for %#v), so that no verb
// (%d, %x, ...) walks the Client's fields.
func (c *Client) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		_, _ = f.Write([]byte(c.GoString()))
	case verb == 'v' || verb == 's' || verb == 'q' || verb == 'x' || verb == 'X':
		// Width, precision and flags apply to the description as to a string.
		_, _ = fmt.Fprintf(f, fmt.FormatString(f, verb), c.String())
	default:
		_, _ = f.Write([]byte(c.String()))
	}
}

// LogValue is how slog logs a Client: a group of its appid and store key.
func (c *Client) LogValue() slog.Value {
	if c == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(slog.String("appid", c.appID), slog.String("key", c.key))
}
