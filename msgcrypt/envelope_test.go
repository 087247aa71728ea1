package msgcrypt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The vector's incoming callback body, as WeCom posts it.
const vecInBody = "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n<Encrypt><![CDATA[" + vecInEncrypt + "]]></Encrypt>\n<AgentID><![CDATA[1]]></AgentID>\n</xml>"

func TestParseEnvelope(t *testing.T) {
	env, err := ParseEnvelope([]byte(vecInBody))
	require.NoError(t, err)
	assert.Equal(t, &Envelope{ToUserName: vecReceiver, AgentID: "1", Encrypt: vecInEncrypt}, env)

	// An Open Platform authorization event, with a prolog and plain text.
	env, err = ParseEnvelope([]byte("<?xml version=\"1.0\"?>\n<!-- push -->\n<xml>\n  <AppId>wxcomponent</AppId>\n  <Encrypt>abc+/=</Encrypt>\n  <Other><Nested>x</Nested></Other>\n</xml>\n"))
	require.NoError(t, err)
	assert.Equal(t, &Envelope{AppID: "wxcomponent", Encrypt: "abc+/="}, env)

	// Escaped text comes back unescaped.
	env, err = ParseEnvelope([]byte("<xml><ToUserName>a&amp;b</ToUserName><Encrypt>x</Encrypt></xml>"))
	require.NoError(t, err)
	assert.Equal(t, "a&b", env.ToUserName)
}

func TestParseEnvelopeRefuses(t *testing.T) {
	for name, body := range map[string]string{
		"empty":               "",
		"not XML":             "Encrypt=abc",
		"other root":          "<root><Encrypt>x</Encrypt></root>",
		"namespaced root":     `<a:xml xmlns:a="urn:x"><Encrypt>x</Encrypt></a:xml>`,
		"no Encrypt":          "<xml><ToUserName>gh_1</ToUserName></xml>",
		"empty Encrypt":       "<xml><Encrypt><![CDATA[]]></Encrypt></xml>",
		"two Encrypt":         "<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
		"nested in Encrypt":   "<xml><Encrypt>a<b/></Encrypt></xml>",
		"unclosed":            "<xml><Encrypt>a</Encrypt>",
		"mismatched tags":     "<xml><Encrypt>a</Other></xml>",
		"second root":         "<xml><Encrypt>a</Encrypt></xml><xml><Encrypt>b</Encrypt></xml>",
		"text after":          "<xml><Encrypt>a</Encrypt></xml>trailing",
		"text before":         "junk<xml><Encrypt>a</Encrypt></xml>",
		"undefined entity":    "<xml><Encrypt>&secret;</Encrypt></xml>",
		"foreign charset":     `<?xml version="1.0" encoding="GBK"?><xml><Encrypt>a</Encrypt></xml>`,
		"end tag first":       "</xml>",
		"unclosed in Encrypt": "<xml><Encrypt>abc",
	} {
		t.Run(name, func(t *testing.T) {
			env, err := ParseEnvelope([]byte(body))
			assert.Nil(t, env)
			assert.ErrorIs(t, err, ErrMalformed)
			if strings.Contains(body, "secret") {
				assert.NotContains(t, err.Error(), "secret", "the input is not quoted")
			}
		})
	}
}

func TestEnvelopeSizeCap(t *testing.T) {
	big := "<xml><Encrypt>" + strings.Repeat("A", MaxEnvelopeSize) + "</Encrypt></xml>"
	_, err := ParseEnvelope([]byte(big))
	assert.ErrorIs(t, err, ErrTooLarge)

	// ReadEnvelope stops reading one byte past the cap.
	r := &countingReader{r: strings.NewReader(big + strings.Repeat(" ", 4<<20))}
	_, err = ReadEnvelope(r)
	assert.ErrorIs(t, err, ErrTooLarge)
	assert.Equal(t, MaxEnvelopeSize+1, r.n)

	env, err := ReadEnvelope(strings.NewReader(vecInBody))
	require.NoError(t, err)
	assert.Equal(t, vecInEncrypt, env.Encrypt)

	boom := errors.New("connection reset")
	_, err = ReadEnvelope(iotest.ErrReader(boom))
	assert.ErrorIs(t, err, boom)
}

type countingReader struct {
	r *strings.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestDecryptEnvelopeVector(t *testing.T) {
	c := newVector(t)
	plain, err := c.DecryptEnvelope(vecInSignature, vecInTimestamp, vecInNonce, []byte(vecInBody))
	require.NoError(t, err)
	assert.Equal(t, vecInPlain, string(plain))

	_, err = c.DecryptEnvelope(vecInSignature, vecInTimestamp, vecInNonce, []byte("<xml/>"))
	assert.ErrorIs(t, err, ErrMalformed)
	_, err = c.DecryptEnvelope(vecInSignature, vecInTimestamp, "1", []byte(vecInBody))
	assert.ErrorIs(t, err, ErrSignature)
}

func TestEncryptReplyVector(t *testing.T) {
	c := newVector(t)
	c.Rand = strings.NewReader(vecOutRandom)
	out, err := c.EncryptReply([]byte(vecOutPlain), vecInTimestamp, vecInNonce)
	require.NoError(t, err)
	// The vector's reply envelope, without its line breaks.
	want := "<xml><Encrypt><![CDATA[" + vecOutEncrypt + "]]></Encrypt>" +
		"<MsgSignature><![CDATA[" + vecOutSignature + "]]></MsgSignature>" +
		"<TimeStamp>" + vecInTimestamp + "</TimeStamp>" +
		"<Nonce><![CDATA[" + vecInNonce + "]]></Nonce></xml>"
	assert.Equal(t, want, string(out))
}

func TestEncryptReplyEscapes(t *testing.T) {
	c := newVector(t)
	nonce := "a]]>b<c>&d"
	out, err := c.EncryptReply([]byte("<xml/>"), "1", nonce)
	require.NoError(t, err)

	// The reply parses, and its nonce and signature hold as sent.
	var got struct {
		Encrypt, MsgSignature, TimeStamp, Nonce string
	}
	require.NoError(t, xml.Unmarshal(out, &got))
	assert.Equal(t, nonce, got.Nonce)
	plain, err := c.Decrypt(got.MsgSignature, got.TimeStamp, got.Nonce, got.Encrypt)
	require.NoError(t, err)
	assert.Equal(t, "<xml/>", string(plain))

	for _, bad := range []string{"a\nb", "\x00", "é"} {
		_, err := c.EncryptReply([]byte("<xml/>"), "1", bad)
		assert.ErrorIs(t, err, ErrMalformed)
		_, err = c.EncryptReply([]byte("<xml/>"), bad, "n")
		assert.ErrorIs(t, err, ErrMalformed)
	}
	_, err = c.EncryptReply(bytes.Repeat([]byte{'x'}, MaxMessageSize+1), "1", "n")
	assert.ErrorIs(t, err, ErrTooLarge)
}
