package msgcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A published third-party test vector: the WeCom callback configuration and
// messages in wechatpy's test suite for its WeChatCrypto.
const (
	vecToken    = "123456"
	vecKey      = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
	vecReceiver = "wx49f0ab532d5d035a"

	// An incoming message.
	vecInSignature = "74d92dfeb87ba7c714f89d98870ae5eb62dff26d"
	vecInTimestamp = "1411525903"
	vecInNonce     = "461056294"
	vecInEncrypt   = "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
	vecInPlain     = "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<FromUserName><![CDATA[messense]]></FromUserName>\n<CreateTime>1411525903</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<MsgId>4363689963896700987</MsgId>\n<AgentID>1</AgentID>\n</xml>"

	// A reply, encrypted with the random prefix "1234567890123456".
	vecOutRandom    = "1234567890123456"
	vecOutPlain     = "<xml>\n<MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[test]]></Content>\n<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n<ToUserName><![CDATA[messense]]></ToUserName>\n<AgentID>1</AgentID>\n<CreateTime>1411525903</CreateTime>\n</xml>"
	vecOutEncrypt   = "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
	vecOutSignature = "407518b7649e86ef23978113f92d27afa9296533"

	// The URL verification request.
	vecEchoSignature = "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
	vecEchoTimestamp = "1411443780"
	vecEchoNonce     = "437374425"
	vecEchoStr       = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
)

func newVector(t testing.TB) *Crypter {
	t.Helper()
	c, err := New(vecToken, vecKey, vecReceiver)
	require.NoError(t, err)
	return c
}

// rawKey decodes the vector's key independently of the code under test.
func rawKey(t testing.TB) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(vecKey + "=")
	require.NoError(t, err)
	require.Len(t, key, 32)
	return key
}

// rawOpen decrypts a base64 ciphertext with plain AES-CBC, without any of the
// checks under test.
func rawOpen(t testing.TB, encrypted string) []byte {
	t.Helper()
	key := rawKey(t)
	buf, err := base64.StdEncoding.DecodeString(encrypted)
	require.NoError(t, err)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(buf, buf)
	return buf
}

// rawSeal encrypts raw bytes (a multiple of 16 long) with plain AES-CBC and
// signs the result with the vector's token: a validly signed ciphertext of
// whatever plaintext a test builds.
func rawSeal(t testing.TB, c *Crypter, raw []byte) (encrypted, sig string) {
	t.Helper()
	key := rawKey(t)
	block, err := aes.NewCipher(key)
	require.NoError(t, err)
	buf := bytes.Clone(raw)
	cipher.NewCBCEncrypter(block, key[:16]).CryptBlocks(buf, buf)
	encrypted = base64.StdEncoding.EncodeToString(buf)
	return encrypted, c.Sign("1", "2", encrypted)
}

// frame builds a plaintext the way WeChat does, with a padding the test picks.
func frame(random, msg, receiver string, pad []byte) []byte {
	b := []byte(random)
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	b = append(b, msg...)
	b = append(b, receiver...)
	return append(b, pad...)
}

// pkcs7 returns WeChat's padding for n bytes of data.
func pkcs7(n int) []byte {
	p := 32 - n%32
	return bytes.Repeat([]byte{byte(p)}, p)
}

func TestDecryptVector(t *testing.T) {
	c := newVector(t)
	plain, err := c.Decrypt(vecInSignature, vecInTimestamp, vecInNonce, vecInEncrypt)
	require.NoError(t, err)
	assert.Equal(t, vecInPlain, string(plain))
}

func TestReencryptVectorByteForByte(t *testing.T) {
	c := newVector(t)
	plain, err := c.Decrypt(vecInSignature, vecInTimestamp, vecInNonce, vecInEncrypt)
	require.NoError(t, err)

	random := rawOpen(t, vecInEncrypt)[:16] // the vector's own random prefix
	c.Rand = bytes.NewReader(random)
	enc, sig, err := c.Encrypt(plain, vecInTimestamp, vecInNonce)
	require.NoError(t, err)
	assert.Equal(t, vecInEncrypt, enc)
	assert.Equal(t, vecInSignature, sig)
}

func TestEncryptVector(t *testing.T) {
	c := newVector(t)
	c.Rand = strings.NewReader(vecOutRandom)
	enc, sig, err := c.Encrypt([]byte(vecOutPlain), vecInTimestamp, vecInNonce)
	require.NoError(t, err)
	assert.Equal(t, vecOutEncrypt, enc)
	assert.Equal(t, vecOutSignature, sig)

	back, err := c.Decrypt(sig, vecInTimestamp, vecInNonce, enc)
	require.NoError(t, err)
	assert.Equal(t, vecOutPlain, string(back))
}

// A second published vector: the message "test" for the receiver "rust" with
// the random prefix "1234567890123456", and a signature for the token "test".
func TestShortVectors(t *testing.T) {
	c, err := New("test", vecKey, "rust")
	require.NoError(t, err)
	c.Rand = strings.NewReader("1234567890123456")
	enc, _, err := c.Encrypt([]byte("test"), "1", "2")
	require.NoError(t, err)
	assert.Equal(t, "9s4gMv99m88kKTh/H8IdkNiFGeG9pd7vNWl50fGRWXY=", enc)
	assert.Equal(t, "d6056f2bb3ad3e30f4afa5ef90cc9ddcdc7b7b27", c.Sign("123456", "test", "rust"))
}

func TestVerifyURLVector(t *testing.T) {
	c := newVector(t)
	echo, err := c.VerifyURL(vecEchoSignature, vecEchoTimestamp, vecEchoNonce, vecEchoStr)
	require.NoError(t, err)
	assert.Equal(t, "5927782489442352469", string(echo))

	// The vector's own negative case: another nonce.
	_, err = c.VerifyURL(vecEchoSignature, vecEchoTimestamp, "437374424", vecEchoStr)
	assert.ErrorIs(t, err, ErrSignature)
}

func TestVerifySignature(t *testing.T) {
	c := newVector(t)
	// printf '%s' 1234561411443780437374425 | sha1sum
	const sig = "97f44b51ccbee5533bf61e753557d165ea0f4566"
	assert.NoError(t, c.VerifySignature(sig, vecEchoTimestamp, vecEchoNonce))
	assert.ErrorIs(t, c.VerifySignature(sig, vecEchoTimestamp, "437374424"), ErrSignature)
	assert.ErrorIs(t, c.VerifySignature(strings.ToUpper(sig), vecEchoTimestamp, vecEchoNonce), ErrSignature)
	assert.ErrorIs(t, c.VerifySignature("", vecEchoTimestamp, vecEchoNonce), ErrSignature)
}

// flip returns s with one bit of byte i changed.
func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 1
	return b
}

func TestDecryptRefusesTampering(t *testing.T) {
	c := newVector(t)
	ct, err := base64.StdEncoding.DecodeString(vecInEncrypt)
	require.NoError(t, err)
	resign := func(ct []byte) (string, string) {
		enc := base64.StdEncoding.EncodeToString(ct)
		return c.Sign(vecInTimestamp, vecInNonce, enc), enc
	}
	plain := rawOpen(t, vecInEncrypt)
	pad := int(plain[len(plain)-1])
	receiverAt := len(plain) - pad - len(vecReceiver)

	// Re-signed tampering reaches the decryption. In CBC, flipping a bit of
	// ciphertext block i flips the same bit of plaintext block i+1.
	padSig, padEnc := resign(flip(ct, len(ct)-17))    // the last padding byte
	idSig, idEnc := resign(flip(ct, receiverAt+3-16)) // a receiver id byte
	cases := []struct {
		name string
		sig  string
		enc  string
		want error
	}{
		{"signature bit", string(flip([]byte(vecInSignature), 7)), vecInEncrypt, ErrSignature},
		{"signature upper case", strings.ToUpper(vecInSignature), vecInEncrypt, ErrSignature},
		{"signature empty", "", vecInEncrypt, ErrSignature},
		{"ciphertext bit, not re-signed", vecInSignature, base64.StdEncoding.EncodeToString(flip(ct, 40)), ErrSignature},
		{"padding bit", padSig, padEnc, ErrPadding},
		{"receiver id bit", idSig, idEnc, ErrReceiverID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Decrypt(tc.sig, vecInTimestamp, vecInNonce, tc.enc)
			assert.ErrorIs(t, err, tc.want)
			assert.Nil(t, got)
			assertClean(t, err)
		})
	}

	t.Run("timestamp", func(t *testing.T) {
		_, err := c.Decrypt(vecInSignature, "1411525904", vecInNonce, vecInEncrypt)
		assert.ErrorIs(t, err, ErrSignature)
	})
	t.Run("another receiver", func(t *testing.T) {
		other, err := New(vecToken, vecKey, "wx49f0ab532d5d035b")
		require.NoError(t, err)
		_, err = other.Decrypt(vecInSignature, vecInTimestamp, vecInNonce, vecInEncrypt)
		assert.ErrorIs(t, err, ErrReceiverID)
		assertClean(t, err)
	})
	t.Run("receiver id a prefix", func(t *testing.T) {
		other, err := New(vecToken, vecKey, "wx49f0ab532d5d035")
		require.NoError(t, err)
		_, err = other.Decrypt(vecInSignature, vecInTimestamp, vecInNonce, vecInEncrypt)
		assert.ErrorIs(t, err, ErrReceiverID)
	})
	t.Run("another token", func(t *testing.T) {
		other, err := New("1234567", vecKey, vecReceiver)
		require.NoError(t, err)
		_, err = other.Decrypt(vecInSignature, vecInTimestamp, vecInNonce, vecInEncrypt)
		assert.ErrorIs(t, err, ErrSignature)
	})
}

// TestDecryptStrictFraming builds validly signed ciphertexts of plaintexts
// that break one rule each.
func TestDecryptStrictFraming(t *testing.T) {
	c := newVector(t)
	const rnd = "0123456789abcdef"
	msg := "<xml>hello</xml>"
	good := frame(rnd, msg, vecReceiver, pkcs7(16+4+len(msg)+len(vecReceiver)))
	require.Zero(t, len(good)%32)

	badPad := func(mut func(b []byte)) []byte {
		b := bytes.Clone(good)
		mut(b)
		return b
	}
	n := len(good)
	long := frame(rnd, msg, vecReceiver, nil)
	binary.BigEndian.PutUint32(long[16:20], uint32(len(msg)+len(vecReceiver)+1))
	long = append(long, pkcs7(len(long))...)

	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"valid", good, nil},
		{"padding byte zero", badPad(func(b []byte) { b[n-1] = 0 }), ErrPadding},
		{"padding over 32", append(bytes.Clone(good), bytes.Repeat([]byte{33}, 32)...), ErrPadding},
		{"padding bytes differ", badPad(func(b []byte) { b[n-2] ^= 1 }), ErrPadding},
		{"a full block of padding of 16", append(frame(rnd, "", "", nil)[:16], bytes.Repeat([]byte{16}, 16)...), ErrMalformed},
		{"header cut", append(frame(rnd, "", "", nil)[:18], bytes.Repeat([]byte{14}, 14)...), ErrMalformed},
		{"length beyond data", long, ErrMalformed},
		{"receiver id extra byte", frame(rnd, msg, vecReceiver+"x", pkcs7(16+4+len(msg)+len(vecReceiver)+1)), ErrReceiverID},
		{"receiver id missing", frame(rnd, msg, "", pkcs7(16+4+len(msg))), ErrReceiverID},
		{"pad to 16 only", padTo16(t, frame(rnd, msg+"0123456789abcd", vecReceiver, nil)), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			enc, sig := rawSeal(t, c, tc.raw)
			got, err := c.Decrypt(sig, "1", "2", enc)
			if tc.want == nil {
				require.NoError(t, err)
				assert.Equal(t, msg, string(got))
				return
			}
			assert.ErrorIs(t, err, tc.want)
			assert.Nil(t, got)
			assertClean(t, err)
		})
	}
}

// padTo16 pads b with PKCS#7 to 16 bytes and checks the result is not a
// multiple of 32, which WeChat's padding always gives.
func padTo16(t *testing.T, b []byte) []byte {
	p := 16 - len(b)%16
	b = append(b, bytes.Repeat([]byte{byte(p)}, p)...)
	require.NotZero(t, len(b)%32)
	return b
}

func TestDecryptRefusesMalformedCiphertext(t *testing.T) {
	c := newVector(t)
	for name, enc := range map[string]string{
		"empty":              "",
		"not base64":         "!!!!",
		"URL alphabet":       strings.NewReplacer("+", "-", "/", "_").Replace(vecInEncrypt),
		"no padding":         strings.TrimRight(vecEchoStr, "="),
		"line break":         vecInEncrypt[:40] + "\n" + vecInEncrypt[40:],
		"one AES block":      base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"48 bytes":           base64.StdEncoding.EncodeToString(make([]byte, 48)),
		"trailing bits set":  vecEchoStr[:len(vecEchoStr)-3] + "R==",
		"ciphertext too big": strings.Repeat("A", MaxEnvelopeSize+4),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.Decrypt(c.Sign("1", "2", enc), "1", "2", enc)
			want := ErrMalformed
			if name == "ciphertext too big" {
				want = ErrTooLarge
			}
			assert.ErrorIs(t, err, want)
			assertClean(t, err)
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for _, receiver := range []string{"", "wx1", vecReceiver, "ww0123456789abcdef-suite"} {
		c, err := New(vecToken, vecKey, receiver)
		require.NoError(t, err)
		for n := range 70 { // every padding length, and a few blocks
			msg := bytes.Repeat([]byte{'m'}, n)
			enc, sig, err := c.Encrypt(msg, "1700000000", "nonce")
			require.NoError(t, err)
			raw, _ := base64.StdEncoding.DecodeString(enc)
			require.Zero(t, len(raw)%32, "WeChat pads to 32 bytes")
			got, err := c.Decrypt(sig, "1700000000", "nonce", enc)
			require.NoError(t, err, "receiver %q, %d bytes", receiver, n)
			assert.Equal(t, msg, got)
		}
	}
}

func TestEncryptRandomness(t *testing.T) {
	c := newVector(t)
	a, _, err := c.Encrypt([]byte("same"), "1", "2")
	require.NoError(t, err)
	b, _, err := c.Encrypt([]byte("same"), "1", "2")
	require.NoError(t, err)
	assert.NotEqual(t, a, b, "crypto/rand supplies a new prefix each time")

	c.Rand = strings.NewReader("short")
	_, _, err = c.Encrypt([]byte("x"), "1", "2")
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)

	c.Rand = nil
	_, _, err = c.Encrypt(make([]byte, MaxMessageSize+1), "1", "2")
	assert.ErrorIs(t, err, ErrTooLarge)
	enc, sig, err := c.Encrypt(make([]byte, MaxMessageSize), "1", "2")
	require.NoError(t, err)
	assert.LessOrEqual(t, len(enc), MaxEnvelopeSize, "the largest message still decrypts")
	got, err := c.Decrypt(sig, "1", "2", enc)
	require.NoError(t, err)
	assert.Len(t, got, MaxMessageSize)
}

func TestNew(t *testing.T) {
	_, err := New("", vecKey, vecReceiver)
	assert.ErrorIs(t, err, ErrInvalidToken)

	for name, key := range map[string]string{
		"empty":                 "",
		"42 characters":         vecKey[:42],
		"44 characters":         vecKey + "=",
		"URL alphabet":          "-" + vecKey[1:],
		"line break":            vecKey[:20] + "\n" + vecKey[21:],
		"space":                 vecKey[:42] + " ",
		"non-ASCII":             vecKey[:41] + "é",
		"padding in the middle": vecKey[:10] + "=" + vecKey[11:],
	} {
		t.Run(name, func(t *testing.T) {
			c, err := New(vecToken, key, vecReceiver)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, ErrInvalidKey)
			if key != "" {
				assertNotQuoted(t, err, key)
				assertNotQuoted(t, err, key[:8])
			}
		})
	}
}

// assertClean checks that no level of err quotes the vector's secrets or a
// decrypted message.
func assertClean(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{vecKey, vecKey[:12], vecToken, "messense", "<xml>", "hello", "0123456789abcdef", "1234567890123456"} {
		assertNotQuoted(t, err, s)
	}
}

func assertNotQuoted(t *testing.T, err error, secret string) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		assert.NotContains(t, e.Error(), secret)
		assert.NotContains(t, fmt.Sprintf("%+v", e), secret)
	}
}

func TestPrintingShowsNoSecret(t *testing.T) {
	c := newVector(t)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("crypter", "c", c, "v", *c)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("crypter", "c", c, "v", *c)
	out := fmt.Sprintf("%v %+v %#v %s %v %+v %#v %x", c, c, c, c, *c, *c, *c, c) + logs.String()
	assert.Contains(t, out, vecReceiver)
	key := rawKey(t)
	for _, secret := range []string{vecKey, vecToken, fmt.Sprintf("%x", key[:8]), string(key[:8]), fmt.Sprint(key[:4])} {
		assert.NotContains(t, out, secret)
	}
}
