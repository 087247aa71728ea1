package server

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"slices"
	"strings"
)

// KeyPrefix starts every client key that GenerateKey makes, so that a key
// pasted where it does not belong (a log, a ticket, a repository) is easy to
// recognize and to scan for.
const KeyPrefix = "wxt_"

// keyRandomBytes is how much randomness a client key carries.
const keyRandomBytes = 32

// hashPrefix starts a key hash in the configuration.
const hashPrefix = "sha256:"

// GenerateKey returns a new client key, "wxt_" and 32 random bytes from
// rand (crypto/rand when nil) in unpadded base64url, and the hash to put in
// the configuration.
func GenerateKey(rand io.Reader) (key, hash string, err error) {
	if rand == nil {
		rand = cryptoRand{}
	}
	b := make([]byte, keyRandomBytes)
	if _, err := io.ReadFull(rand, b); err != nil {
		return "", "", errors.New("generating a client key: not enough randomness")
	}
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b)
	return key, HashKey(key), nil
}

type cryptoRand struct{}

func (cryptoRand) Read(b []byte) (int, error) { return rand.Read(b) }

// HashKey returns the configuration form of key's hash: "sha256:<hex>".
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hashPrefix + hex.EncodeToString(sum[:])
}

// ParseKeyHash decodes a configuration key hash. The error never quotes the
// value: a key pasted in place of its hash must not reach a log.
func ParseKeyHash(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if s == "" {
		return sum, errors.New("missing: run `wxtoken keygen` and paste the hash it prints")
	}
	if strings.HasPrefix(s, KeyPrefix) {
		return sum, errors.New("this is a client key, not its hash: put the hash (sha256:...) in the config and give the key to the client")
	}
	h, ok := strings.CutPrefix(s, hashPrefix)
	if !ok {
		return sum, errors.New("not sha256:<64 hex digits>")
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != sha256.Size {
		return sum, errors.New("not sha256:<64 hex digits>")
	}
	copy(sum[:], b)
	return sum, nil
}

// keyring finds the client a bearer key belongs to by comparing its hash
// with every client's in constant time: neither a match nor its position
// shows in the time an answer takes.
type keyring struct {
	hashes  [][sha256.Size]byte
	clients []*client
}

// lookup returns the client whose key is key, or nil.
func (k *keyring) lookup(key string) *client {
	sum := sha256.Sum256([]byte(key))
	var found *client
	for i := range k.hashes {
		if subtle.ConstantTimeCompare(sum[:], k.hashes[i][:]) == 1 {
			found = k.clients[i]
		}
	}
	return found
}

// sortedKeys returns m's keys in order, for stable errors and output.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
