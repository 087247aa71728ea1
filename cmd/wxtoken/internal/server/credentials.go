package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wxtoken/wxtoken"
	"github.com/wxtoken/wxtoken/wecom"
)

// credential is one named credential the server hands out.
type credential struct {
	name   string
	client *wxtoken.Client
	ticket bool // answered as "ticket", not "access_token"
	jsapi  bool // signs wx.config: /v1/jssdk serves it
	owned  bool // a Client of its own, closed by the server (not a Registry handle)
	// agentID is a wecom_agent_ticket's application, which wx.agentConfig
	// needs beside the signature.
	agentID  string
	warnings warnGate // its failures' log lines
}

// buildCredentials makes a Client for every configured credential: the
// Official Account tokens in the Registry, WeCom tokens and the tickets as
// Clients of their own on the same Store, logger and Observer. It does no I/O.
func (s *Server) buildCredentials(secrets Secrets, opts []wxtoken.Option) error {
	// Tokens first: tickets are fetched with them.
	for _, pass := range []func(CredentialConfig) bool{isToken, isTicket} {
		for _, name := range sortedKeys(s.cfg.Credentials) {
			c := s.cfg.Credentials[name]
			if !pass(c) {
				continue
			}
			cred, err := s.buildCredential(name, c, secrets[name], opts)
			if err != nil {
				return fmt.Errorf("credentials.%s: %w", name, err)
			}
			s.creds[name] = cred
		}
	}
	return nil
}

func isToken(c CredentialConfig) bool  { return c.Type == TypeOfficialAccount || c.Type == TypeWeCom }
func isTicket(c CredentialConfig) bool { return !isToken(c) }

func (s *Server) buildCredential(name string, c CredentialConfig, secret string, opts []wxtoken.Option) (*credential, error) {
	cred := &credential{name: name}
	var err error
	switch c.Type {
	case TypeOfficialAccount:
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cred.client, err = s.reg.Client(ctx, name)
	case TypeWeCom:
		cred.owned = true
		wopts := opts
		if s.cfg.WeComBaseURL != "" {
			wopts = append(wopts[:len(wopts):len(wopts)], wxtoken.WithBaseURL(s.cfg.WeComBaseURL))
		}
		cred.client, err = wecom.New(c.CorpID, secret, wopts...)
	default:
		cred.owned, cred.ticket = true, true
		tokens := s.creds[c.Token].client
		switch c.Type {
		case TypeJSAPITicket:
			cred.jsapi = true
			cred.client, err = wxtoken.NewTicket(tokens, wxtoken.TicketJSAPI)
		case TypeWxCardTicket:
			cred.client, err = wxtoken.NewTicket(tokens, wxtoken.TicketWxCard)
		case TypeWeComJSAPITicket:
			cred.jsapi = true
			cred.client, err = wecom.NewJSAPITicket(tokens)
		case TypeWeComAgentTicket:
			cred.jsapi, cred.agentID = true, c.AgentID
			cred.client, err = wecom.NewAgentTicket(tokens)
		}
	}
	return cred, err
}

// lookup is the Registry's: the Source of an official_account credential.
func (s *Server) lookup(secrets Secrets) func(ctx context.Context, name string) (wxtoken.Source, error) {
	return func(_ context.Context, name string) (wxtoken.Source, error) {
		c, ok := s.cfg.Credentials[name]
		if !ok || c.Type != TypeOfficialAccount {
			return nil, errors.New("not an official_account credential")
		}
		return wxtoken.OfficialAccount(c.AppID, secrets[name], c.Stable)
	}
}

// upstreamHTTPClient is the one connection pool every credential calls
// WeChat through.
func upstreamHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 32
	return &http.Client{Timeout: timeout, Transport: tr}
}

// closeCredentials stops the Clients of their own, tickets first.
func (s *Server) closeCredentials() {
	for _, cred := range s.creds {
		if cred.owned && cred.ticket {
			_ = cred.client.Close()
		}
	}
	for _, cred := range s.creds {
		if cred.owned && !cred.ticket {
			_ = cred.client.Close()
		}
	}
}
