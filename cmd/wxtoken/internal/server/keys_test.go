package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestGenerateKeyIsRandomPrefixedAndHashed(t *testing.T) {
	t.Parallel()
	key, hash, err := GenerateKey(nil)
	require.NoError(t, err)
	assert.Regexp(t, regexp.MustCompile(`^wxt_[A-Za-z0-9_-]{43}$`), key)
	sum := sha256.Sum256([]byte(key))
	assert.Equal(t, "sha256:"+hex.EncodeToString(sum[:]), hash)
	parsed, err := ParseKeyHash(hash)
	require.NoError(t, err)
	assert.Equal(t, sum, parsed)

	other, _, err := GenerateKey(nil)
	require.NoError(t, err)
	assert.NotEqual(t, key, other)

	fixed, _, err := GenerateKey(bytes.NewReader(make([]byte, 32)))
	require.NoError(t, err)
	assert.Equal(t, "wxt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", fixed)
	_, _, err = GenerateKey(bytes.NewReader(make([]byte, 5)))
	require.Error(t, err, "too little randomness")
}

func TestKeyringFindsTheClientOfAKey(t *testing.T) {
	t.Parallel()
	a, b := &client{name: "a"}, &client{name: "b"}
	var k keyring
	for _, c := range []struct {
		key string
		c   *client
	}{{"wxt_a", a}, {"wxt_b", b}} {
		sum, err := ParseKeyHash(HashKey(c.key))
		require.NoError(t, err)
		k.hashes, k.clients = append(k.hashes, sum), append(k.clients, c.c)
	}
	assert.Same(t, a, k.lookup("wxt_a"))
	assert.Same(t, b, k.lookup("wxt_b"))
	assert.Nil(t, k.lookup("wxt_c"))
	assert.Nil(t, k.lookup(""))
}
