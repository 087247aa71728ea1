package msgcrypt

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// sentinels are the errors Decrypt and ParseEnvelope may return.
var sentinels = []error{ErrSignature, ErrMalformed, ErrPadding, ErrReceiverID, ErrTooLarge}

func checkDecryptError(t *testing.T, err error, plain []byte) {
	t.Helper()
	if !isSentinel(err) {
		t.Fatalf("error matches no sentinel: %v", err)
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		msg := e.Error()
		if strings.Contains(msg, vecKey[:8]) || strings.Contains(msg, vecToken) {
			t.Fatalf("error quotes a secret: %q", msg)
		}
		if len(plain) >= 8 && strings.Contains(msg, string(plain)) {
			t.Fatalf("error quotes the plaintext: %q", msg)
		}
	}
}

func isSentinel(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// FuzzDecrypt feeds Decrypt validly signed ciphertexts of any text, so that
// every input reaches the base64 decoder and beyond.
func FuzzDecrypt(f *testing.F) {
	for _, s := range []string{vecInEncrypt, vecOutEncrypt, vecEchoStr, "", "====", "AAAA", strings.Repeat("A", 44)} {
		f.Add(s)
	}
	c := newVector(f)
	f.Fuzz(func(t *testing.T, encrypted string) {
		plain, err := c.Decrypt(c.Sign("1", "2", encrypted), "1", "2", encrypted)
		if err != nil {
			if plain != nil {
				t.Fatal("data returned with an error")
			}
			checkDecryptError(t, err, nil)
			return
		}
		roundTrip(t, c, plain)
	})
}

// FuzzDecryptPlaintext encrypts any bytes with the key and a valid signature,
// so that every input reaches the padding, length and receiver id checks.
func FuzzDecryptPlaintext(f *testing.F) {
	c := newVector(f)
	f.Add(rawOpen(f, vecInEncrypt))
	f.Add(rawOpen(f, vecOutEncrypt))
	f.Add(rawOpen(f, vecEchoStr))
	f.Add(frame("0123456789abcdef", "", vecReceiver, pkcs7(16+4+len(vecReceiver))))
	f.Add(bytes.Repeat([]byte{32}, 32))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 4096 {
			return
		}
		if r := len(raw) % 16; r != 0 || len(raw) == 0 {
			raw = append(raw, make([]byte, 16-r)...)
		}
		enc, sig := rawSeal(t, c, raw)
		plain, err := c.Decrypt(sig, "1", "2", enc)
		if err != nil {
			var msg []byte
			if len(raw) > headerLen {
				msg = raw[headerLen:]
			}
			checkDecryptError(t, err, msg)
			return
		}
		if !bytes.Contains(raw, plain) {
			t.Fatal("the message is not taken from the plaintext")
		}
		roundTrip(t, c, plain)
	})
}

func roundTrip(t *testing.T, c *Crypter, plain []byte) {
	t.Helper()
	enc, sig, err := c.Encrypt(plain, "3", "4")
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.Decrypt(sig, "3", "4", enc)
	if err != nil || !bytes.Equal(back, plain) {
		t.Fatalf("round trip: %v", err)
	}
}

// FuzzParseEnvelope checks that no body makes ParseEnvelope panic, that it
// fails only with ErrMalformed or ErrTooLarge, without quoting the body, and
// that a parsed envelope always has an Encrypt.
func FuzzParseEnvelope(f *testing.F) {
	for _, s := range []string{
		vecInBody,
		"<xml><Encrypt>x</Encrypt></xml>",
		"<?xml version=\"1.0\"?><xml><AppId>a</AppId><Encrypt><![CDATA[b]]></Encrypt></xml>",
		"<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
		"<xml><Encrypt>a<b/></Encrypt></xml>",
		"<xml><x><y><z/></y></x><Encrypt>a</Encrypt></xml><!-- c -->",
		"<xml>",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := ParseEnvelope(body)
		if err != nil {
			if env != nil {
				t.Fatal("envelope returned with an error")
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(body) >= 8 && strings.Contains(err.Error(), string(body)) {
				t.Fatalf("error quotes the body: %q", err)
			}
			return
		}
		if env.Encrypt == "" {
			t.Fatal("envelope without Encrypt accepted")
		}
	})
}
