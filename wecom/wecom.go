// Package wecom gives WeCom (企业微信) services the wxtoken engine: a Client
// per (corpid, application secret) on GET /cgi-bin/gettoken, and WeCom's
// JS-SDK tickets on top of it, each cached, persisted, shared across replicas
// and renewed ahead like an Official Account's access_token.
//
//	client, err := wecom.New(corpID, corpSecret, wxtoken.WithStore(store))
//	tok, err := client.Get(ctx)                        // ?access_token=tok on qyapi.weixin.qq.com
//	hc := wxtoken.NewHTTPClient(client, nil)           // adds it, heals 40014/42001/40001
//	ticket, err := wecom.NewJSAPITicket(client)        // wx.config
//	agent, err := wecom.NewAgentTicket(client)         // wx.agentConfig
//
// WeCom hands back the same token while it is valid and may invalidate it
// early; a business API's rejection heals through Invalidate (the Transport
// does it for you). At gettoken, 40001 is a wrong secret: a permanent error
// that wxtoken.IsTokenRejected does not claim.
//
// The store key is "wecom.<corpid>.<fingerprint of the secret>": two
// applications of one corp have two keys, and no key, file name or log line
// holds the secret.
package wecom

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	"github.com/wxtoken/wxtoken"
)

// DefaultBaseURL is WeCom's API origin, used unless wxtoken.WithBaseURL says
// otherwise.
const DefaultBaseURL = "https://qyapi.weixin.qq.com"

// WeCom errcodes that gettoken answers and the Client classifies.
const (
	CodeInvalidSecret       = 40001 // at gettoken: the application secret is wrong
	CodeInvalidCorpID       = 40013
	CodeInvalidToken        = 40014
	CodeInvalidSecretOrCorp = 40091
	CodeMissingCorpID       = 41002
	CodeMissingSecret       = 41004
	CodeTokenExpired        = 42001
	CodeQuota               = 45009
	CodeIPNotAllowed        = 60020
)

// New returns a wxtoken.Client for the access_token of the WeCom application
// whose secret is corpSecret, in the corp corpID. It does no I/O. Options are
// wxtoken's; WithBaseURL points it at a wxtest server in tests.
func New(corpID, corpSecret string, opts ...wxtoken.Option) (*wxtoken.Client, error) {
	if err := checkCredentials(corpID, corpSecret); err != nil {
		return nil, err
	}
	src := &source{corpID: corpID, secret: func() string { return corpSecret }}
	return wxtoken.NewClient(Key(corpID, corpSecret), src, opts...)
}

// Key returns the store key of the token of (corpID, corpSecret):
// "wecom.<corpid>.<the first 16 hex digits of the secret's SHA-256>".
func Key(corpID, corpSecret string) string {
	sum := sha256.Sum256([]byte(corpSecret))
	return "wecom." + corpID + "." + hex.EncodeToString(sum[:8])
}

func checkCredentials(corpID, secret string) error {
	switch {
	case corpID == "":
		return errors.New("wecom: empty corpid")
	case secret == "":
		return errors.New("wecom: empty application secret")
	case len(corpID) > 64 || strings.IndexFunc(corpID, notIDRune) >= 0:
		return fmt.Errorf("wecom: corpid %q has characters outside [A-Za-z0-9_-]", corpID)
	case strings.IndexFunc(secret, unicode.IsControl) >= 0 || strings.ContainsRune(secret, ' '):
		return errors.New("wecom: application secret contains spaces or control characters")
	}
	return nil
}

func notIDRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-')
}

// source fetches a WeCom application's access_token.
type source struct {
	corpID string
	secret func() string // behind a func: printers walking by reflection do not reach it
}

// Info names the corp; WeCom tokens go to qyapi.weixin.qq.com; they cannot be forced.
func (s *source) Info() wxtoken.SourceInfo {
	return wxtoken.SourceInfo{Name: "wecom " + s.corpID + " access_token", AppID: s.corpID,
		APIOrigin: DefaultBaseURL}
}

// Redact removes the application secret from text.
func (s *source) Redact(text string) string { return wxtoken.ScrubText(text, s.secret()) }

// Fetch calls gettoken.
func (s *source) Fetch(ctx context.Context, req wxtoken.FetchRequest) (wxtoken.Token, error) {
	base := req.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	q := url.Values{"corpid": {s.corpID}, "corpsecret": {s.secret()}}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/cgi-bin/gettoken?"+q.Encode(), nil)
	if err != nil {
		return wxtoken.Token{}, wxtoken.ScrubError(fmt.Errorf("wecom: gettoken: %w", err), s.secret())
	}
	return wxtoken.FetchToken(req.HTTPClient, hreq, "access_token", classify, s.secret())
}

// classify is WeCom's table for gettoken: credentials, the IP list and the
// quota are permanent; anything else (-1 busy among them) is retried.
func classify(code int) wxtoken.ErrorKind {
	switch code {
	case CodeInvalidSecret, CodeInvalidCorpID, CodeInvalidSecretOrCorp, CodeMissingCorpID,
		CodeMissingSecret, CodeIPNotAllowed, CodeQuota:
		return wxtoken.KindPermanent
	}
	return wxtoken.KindRetryable
}

// NewJSAPITicket returns a Client for the corp's jsapi_ticket
// (GET /cgi-bin/get_jsapi_ticket), which signs wx.config: use its
// JSSDKConfig. One ticket per corp, whichever application's token fetches it.
func NewJSAPITicket(c *wxtoken.Client, opts ...wxtoken.Option) (*wxtoken.Client, error) {
	corp := corpOf(c)
	return wxtoken.NewTicketClient(c, wxtoken.TicketSpec{
		Key: "wecom." + corp + ".ticket.jsapi", Path: "/cgi-bin/get_jsapi_ticket",
		Name: "wecom " + corp + " jsapi ticket", JSAPI: true,
	}, opts...)
}

// NewAgentTicket returns a Client for the application's agent_config ticket
// (GET /cgi-bin/ticket/get?type=agent_config), which signs wx.agentConfig with
// the same algorithm (wxtoken.SignJSSDK). One ticket per application.
func NewAgentTicket(c *wxtoken.Client, opts ...wxtoken.Option) (*wxtoken.Client, error) {
	return wxtoken.NewTicketClient(c, wxtoken.TicketSpec{
		Key: c.Key() + ".ticket.agent_config", Path: "/cgi-bin/ticket/get",
		Query: url.Values{"type": {"agent_config"}},
		Name:  "wecom " + corpOf(c) + " agent_config ticket", JSAPI: true,
	}, opts...)
}

// corpOf is the corpid of a WeCom Client, from its key.
func corpOf(c *wxtoken.Client) string {
	parts := strings.Split(c.Key(), ".")
	if len(parts) == 3 && parts[0] == "wecom" {
		return parts[1]
	}
	return c.Key()
}
