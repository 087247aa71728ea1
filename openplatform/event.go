package openplatform

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/msgcrypt"
)

// The InfoTypes of the authorization events.
const (
	InfoVerifyTicket     = "component_verify_ticket"
	InfoAuthorized       = "authorized"
	InfoUpdateAuthorized = "updateauthorized"
	InfoUnauthorized     = "unauthorized"
)

// Event is one authorization event, decrypted. Printing or logging it shows
// neither the verify ticket nor the authorization code.
type Event struct {
	InfoType        string
	CreateTime      time.Time
	AuthorizerAppID string // authorized, updateauthorized, unauthorized
	// Authorization is the exchanged authorization of an authorized or
	// updateauthorized event, already saved.
	Authorization *Authorization
	// Raw is the decrypted XML, for InfoTypes this package does not know.
	// It may hold credentials: do not log it. Encoders skip it.
	Raw []byte `json:"-" xml:"-"`

	authCode, ticket string
}

// String shows the InfoType, time and authorizer only.
func (ev Event) String() string {
	return fmt.Sprintf("openplatform.Event{%s at %s, authorizer %q}", ev.InfoType,
		ev.CreateTime.UTC().Format(time.RFC3339), ev.AuthorizerAppID)
}

// LogValue is the same as String, for slog.
func (ev Event) LogValue() slog.Value {
	return slog.GroupValue(slog.String("info_type", ev.InfoType), slog.Time("create_time", ev.CreateTime),
		slog.String("authorizer", ev.AuthorizerAppID))
}

// Format makes every verb print String, so %#v shows no credential either.
func (ev Event) Format(f fmt.State, verb rune) { io.WriteString(f, ev.String()) }

// maxEventXML caps the decrypted event; a real one is a few hundred bytes.
const maxEventXML = 64 << 10

// ErrMalformedEvent is matched by the error of an event whose decrypted XML
// is not an authorization event.
var ErrMalformedEvent = errors.New("openplatform: malformed authorization event")

// eventXML is the decrypted XML of an authorization event.
type eventXML struct {
	XMLName           xml.Name `xml:"xml"`
	AppID             string   `xml:"AppId"`
	CreateTime        string   `xml:"CreateTime"`
	InfoType          string   `xml:"InfoType"`
	VerifyTicket      string   `xml:"ComponentVerifyTicket"`
	AuthorizerAppID   string   `xml:"AuthorizerAppid"`
	AuthorizationCode string   `xml:"AuthorizationCode"`
}

// ParseEvent decodes the decrypted XML of an authorization event for the
// component appID. The root must be <xml>, with AppId equal to appID, a
// CreateTime in Unix seconds and an InfoType; a ticket push needs its
// ticket, an authorized event its authorizer and code, an unauthorized event
// its authorizer. The error matches ErrMalformedEvent and quotes nothing.
func ParseEvent(appID string, plain []byte) (Event, error) {
	if len(plain) > maxEventXML {
		return Event{}, fmt.Errorf("%w: over %d bytes", ErrMalformedEvent, maxEventXML)
	}
	var x eventXML
	if err := xml.NewDecoder(bytes.NewReader(plain)).Decode(&x); err != nil {
		return Event{}, fmt.Errorf("%w: not XML", ErrMalformedEvent)
	}
	secs, err := strconv.ParseInt(strings.TrimSpace(x.CreateTime), 10, 64)
	trim := strings.TrimSpace
	ev := Event{InfoType: trim(x.InfoType), AuthorizerAppID: trim(x.AuthorizerAppID), Raw: plain,
		authCode: trim(x.AuthorizationCode), ticket: trim(x.VerifyTicket)}
	switch {
	case trim(x.AppID) != appID:
		return Event{}, fmt.Errorf("%w: AppId is not this platform's", ErrMalformedEvent)
	case err != nil || secs <= 0 || secs > 1<<40:
		return Event{}, fmt.Errorf("%w: CreateTime is not Unix seconds", ErrMalformedEvent)
	case ev.InfoType == "" || len(ev.InfoType) > 64:
		return Event{}, fmt.Errorf("%w: no InfoType", ErrMalformedEvent)
	}
	ev.CreateTime = time.Unix(secs, 0)
	switch ev.InfoType {
	case InfoVerifyTicket:
		if ev.ticket == "" {
			return Event{}, fmt.Errorf("%w: no ComponentVerifyTicket", ErrMalformedEvent)
		}
	case InfoAuthorized, InfoUpdateAuthorized:
		if !validAppID(ev.AuthorizerAppID) || ev.authCode == "" {
			return Event{}, fmt.Errorf("%w: no AuthorizerAppid or AuthorizationCode", ErrMalformedEvent)
		}
	case InfoUnauthorized:
		if !validAppID(ev.AuthorizerAppID) {
			return Event{}, fmt.Errorf("%w: no AuthorizerAppid", ErrMalformedEvent)
		}
	}
	return ev, nil
}

// eventTimeout bounds the handling of one event: WeChat waits 5 s for
// "success" and pushes again otherwise.
const eventTimeout = 4500 * time.Millisecond

// ServeHTTP is the authorization event URL (授权事件接收URL). It verifies and
// decrypts the event; a forged or altered one is refused with 403 and
// logged, without secrets. A verify ticket is saved (the newest wins: an
// older push changes nothing); an authorized or updateauthorized event's
// code is exchanged and the record with its refresh token saved; an
// unauthorized event leaves a tombstone. Only then is the event handed to
// Config.OnEvent and answered "success". A save that fails is answered 500,
// so that WeChat sends the event again.
func (p *Platform) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	ev, err := p.openEvent(r)
	if err != nil {
		p.log.Warn("openplatform: refused an event", "component", p.appID, "remote", r.RemoteAddr, "err", err)
		if errors.Is(err, ErrSignature) {
			http.Error(w, "forbidden", http.StatusForbidden)
		} else {
			http.Error(w, "bad request", http.StatusBadRequest)
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), eventTimeout)
	defer cancel()
	if err := p.handle(ctx, &ev); err != nil {
		p.log.Error("openplatform: an event could not be saved; WeChat will send it again", "component", p.appID,
			"event", ev, "err", err)
		http.Error(w, "not saved", http.StatusInternalServerError)
		return
	}
	p.hand(ctx, ev)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "success")
}

// openEvent reads, verifies and decrypts the event of r.
func (p *Platform) openEvent(r *http.Request) (Event, error) {
	env, err := msgcrypt.ReadEnvelope(r.Body)
	if err != nil {
		return Event{}, err
	}
	q := r.URL.Query()
	plain, err := p.crypter.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt)
	switch {
	case errors.Is(err, msgcrypt.ErrSignature), errors.Is(err, msgcrypt.ErrReceiverID), errors.Is(err, msgcrypt.ErrPadding):
		return Event{}, fmt.Errorf("%w: %w", ErrSignature, err)
	case err != nil:
		return Event{}, err
	}
	return ParseEvent(p.appID, plain)
}

// handle saves what ev changes.
func (p *Platform) handle(ctx context.Context, ev *Event) error {
	switch ev.InfoType {
	case InfoVerifyTicket:
		saved, err := p.saveTicket(ctx, ev.ticket, ev.CreateTime)
		if err == nil && !saved {
			p.log.Info("openplatform: a verify ticket push no newer than the stored one changed nothing",
				"component", p.appID, "create_time", ev.CreateTime)
		}
		return err
	case InfoAuthorized, InfoUpdateAuthorized:
		if gone, err := p.cancelledAfter(ctx, ev.AuthorizerAppID, ev.CreateTime); err != nil || gone {
			return err
		}
		auth, err := p.authorize(ctx, ev.authCode, ev.CreateTime)
		if err != nil {
			return err
		}
		ev.Authorization = &auth
		return nil
	case InfoUnauthorized:
		if age := time.Since(ev.CreateTime); age > maxEventAge {
			p.log.Warn("openplatform: an unauthorized event over an hour old changed nothing (a replay?)",
				"component", p.appID, "appid", ev.AuthorizerAppID, "create_time", ev.CreateTime)
			return nil
		}
		p.log.Warn("openplatform: an account cancelled its authorization", "component", p.appID,
			"appid", ev.AuthorizerAppID)
		return p.markGone(ctx, ev.AuthorizerAppID, ev.CreateTime)
	}
	p.log.Info("openplatform: an event of an InfoType this package does not handle", "component", p.appID,
		"info_type", ev.InfoType)
	return nil
}

// cancelledAfter reports whether the Store holds a tombstone of appID from an
// unauthorized event later than t: an authorized event from before it
// (retried late, replayed) changes nothing.
func (p *Platform) cancelledAfter(ctx context.Context, appID string, t time.Time) (bool, error) {
	rec, err := p.store.Load(ctx, p.authorizerKey(appID))
	switch {
	case errors.Is(err, wxtoken.ErrNotFound), errors.Is(err, wxtoken.ErrCorrupt):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("openplatform: reading the record of %s: %w", appID, err)
	}
	if !isTombstone(rec) || !cancelledAt(rec).After(t) {
		return false, nil
	}
	p.log.Info("openplatform: an authorized event older than the account's cancellation changed nothing",
		"component", p.appID, "appid", appID, "authorized", t, "cancelled", cancelledAt(rec))
	return true, nil
}

// hand gives ev to Config.OnEvent, recovering from a panic there.
func (p *Platform) hand(ctx context.Context, ev Event) {
	if p.onEvent == nil {
		return
	}
	defer func() {
		if v := recover(); v != nil {
			p.log.Error("openplatform: OnEvent panicked; the event is answered all the same",
				"component", p.appID, "event", ev)
		}
	}()
	p.onEvent(ctx, ev)
}
