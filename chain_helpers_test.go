package wxtoken

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chainLevels returns err and every error reachable from it through Unwrap,
// single or multiple, depth first: what an error-reporting tool walks.
func chainLevels(err error) []error {
	if err == nil {
		return nil
	}
	levels := []error{err}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		levels = append(levels, chainLevels(u.Unwrap())...)
	case interface{ Unwrap() []error }:
		for _, in := range u.Unwrap() {
			levels = append(levels, chainLevels(in)...)
		}
	}
	return levels
}

// spellings returns value as it is, query-escaped and JSON-escaped: the
// forms in which a request carries a secret and an upstream may quote it.
func spellings(value string) []string {
	j, _ := json.Marshal(value)
	return []string{value, url.QueryEscape(value), strings.Trim(string(j), `"`)}
}

// requireCleanChain fails unless err is an error none of whose levels has a
// text holding any spelling of any of values.
func requireCleanChain(t *testing.T, err error, values ...string) {
	t.Helper()
	require.Error(t, err)
	for i, level := range chainLevels(err) {
		for _, v := range values {
			for _, s := range spellings(v) {
				assert.NotContains(t, level.Error(), s, "level %d (%T) of %q", i, level, err)
			}
		}
	}
}

// assertNoSpelling fails if text holds any spelling of any of values.
func assertNoSpelling(t *testing.T, text string, values ...string) {
	t.Helper()
	for _, v := range values {
		for _, s := range spellings(v) {
			assert.NotContains(t, text, s)
		}
	}
}

func TestChainLevelsWalksEveryUnwrap(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	joined := errors.Join(a, &url.Error{Op: "Get", URL: "u", Err: b})
	assert.Len(t, chainLevels(joined), 4)
}
