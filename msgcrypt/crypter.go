package msgcrypt

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
)

// Size caps. A WeChat callback is a few kilobytes; these leave room for the
// largest messages WeChat sends while bounding what a forged request can make
// a server read, hash and decrypt.
const (
	// MaxEnvelopeSize caps an XML envelope (ReadEnvelope, ParseEnvelope) and a
	// base64 ciphertext (Decrypt, VerifyURL), in bytes.
	MaxEnvelopeSize = 1 << 20
	// MaxMessageSize caps the message Encrypt accepts, in bytes, so that its
	// ciphertext stays under MaxEnvelopeSize.
	MaxMessageSize = 512 << 10
)

const (
	keyLen     = 43 // characters of an EncodingAESKey
	blockSize  = 32 // WeChat pads to 32 bytes, not to the AES block size
	randLen    = 16 // random bytes in front of each message
	headerLen  = randLen + 4
	base64Std  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	maxPadding = blockSize
)

// A Crypter encrypts, decrypts and signs the messages of one WeChat callback
// configuration. It is safe for concurrent use, provided Rand is not changed
// while it is in use and Rand itself is safe for concurrent use.
type Crypter struct {
	// Rand supplies the 16 random bytes put in front of each message Encrypt
	// encrypts. Nil means crypto/rand. Tests set it to reproduce a known
	// ciphertext.
	Rand io.Reader

	token      string
	receiverID []byte
	block      cipher.Block
	iv         [aes.BlockSize]byte
}

// New returns a Crypter for the token, the 43-character EncodingAESKey and the
// receiver id configured on WeChat's side. The receiver id is the appid of an
// Official Account, the component appid of a third-party platform, or in WeCom
// the corpid (the suite id for a suite's callbacks, "" where WeCom sends none);
// Decrypt refuses a message addressed to any other.
//
// A key that is not 43 characters of standard base64 is refused with
// ErrInvalidKey and an empty token with ErrInvalidToken; neither error quotes
// the value.
func New(token, encodingAESKey, receiverID string) (*Crypter, error) {
	if token == "" {
		return nil, ErrInvalidToken
	}
	key, err := decodeKey(encodingAESKey)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrInvalidKey // unreachable: the key has 32 bytes
	}
	c := &Crypter{token: token, receiverID: []byte(receiverID), block: block}
	copy(c.iv[:], key)
	return c, nil
}

// decodeKey checks the alphabet itself: the base64 decoder would skip line
// breaks, and it must not be strict about the last character, whose unused low
// bits WeChat does not set to zero.
func decodeKey(s string) ([]byte, error) {
	if len(s) != keyLen {
		return nil, fmt.Errorf("%w (got %d characters)", ErrInvalidKey, len(s))
	}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(base64Std, s[i]) < 0 {
			return nil, fmt.Errorf("%w (character %d is not base64)", ErrInvalidKey, i+1)
		}
	}
	key, err := base64.StdEncoding.DecodeString(s + "=")
	if err != nil || len(key) != 32 {
		return nil, ErrInvalidKey
	}
	return key, nil
}

// Sign returns the msg_signature of a ciphertext: the lower-case hex SHA-1 of
// the token, timestamp, nonce and encrypted strings, sorted and concatenated.
func (c *Crypter) Sign(timestamp, nonce, encrypted string) string {
	return signature(c.token, timestamp, nonce, encrypted)
}

// VerifySignature checks the plain signature parameter an Official Account
// callback carries (also in safe mode, beside msg_signature): the SHA-1 of the
// token, timestamp and nonce, sorted and concatenated. It is what proves the
// server URL verification request, whose echostr is answered unchanged. It
// returns nil or ErrSignature; the comparison takes constant time.
func (c *Crypter) VerifySignature(sig, timestamp, nonce string) error {
	return verify(signature(c.token, timestamp, nonce), sig)
}

func signature(parts ...string) string {
	sort.Strings(parts)
	h := sha1.New()
	for _, p := range parts {
		io.WriteString(h, p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func verify(want, got string) error {
	if subtle.ConstantTimeCompare([]byte(want), []byte(got)) != 1 {
		return ErrSignature
	}
	return nil
}

// Decrypt verifies msgSignature against timestamp, nonce and the base64
// ciphertext encrypted (the Encrypt element of a callback), decrypts it and
// returns the message, normally XML.
//
// The signature is checked first, in constant time, so that a forged message is
// refused (ErrSignature) before its padding is looked at. Then, strictly: the
// ciphertext must be base64 of a whole number of 32-byte blocks and the declared
// length must fit (ErrMalformed), the padding must be PKCS#7 of 1 to 32 bytes
// (ErrPadding), and the bytes after the message must be exactly the receiver id
// given to New (ErrReceiverID). A ciphertext over MaxEnvelopeSize is refused
// with ErrTooLarge before it is hashed.
func (c *Crypter) Decrypt(msgSignature, timestamp, nonce, encrypted string) ([]byte, error) {
	if len(encrypted) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: ciphertext over %d bytes", ErrTooLarge, MaxEnvelopeSize)
	}
	if err := verify(c.Sign(timestamp, nonce, encrypted), msgSignature); err != nil {
		return nil, err
	}
	buf, err := decodeCiphertext(encrypted)
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext is not base64", ErrMalformed)
	}
	if len(buf) == 0 || len(buf)%blockSize != 0 {
		return nil, fmt.Errorf("%w: ciphertext of %d bytes is not a whole number of %d-byte blocks", ErrMalformed, len(buf), blockSize)
	}
	cipher.NewCBCDecrypter(c.block, c.iv[:]).CryptBlocks(buf, buf)
	return c.open(buf)
}

// decodeCiphertext is strict base64: Go's decoder, even in strict mode, skips
// line breaks, so they are refused here first.
func decodeCiphertext(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, ErrMalformed
	}
	return base64.StdEncoding.Strict().DecodeString(s)
}

// open takes a decrypted buffer apart: padding, random prefix, length,
// message, receiver id.
func (c *Crypter) open(buf []byte) ([]byte, error) {
	n := int(buf[len(buf)-1])
	if n < 1 || n > maxPadding || n > len(buf) {
		return nil, ErrPadding
	}
	for _, b := range buf[len(buf)-n:] {
		if int(b) != n {
			return nil, ErrPadding
		}
	}
	body := buf[:len(buf)-n]
	if len(body) < headerLen {
		return nil, fmt.Errorf("%w: decrypted data shorter than its header", ErrMalformed)
	}
	size := binary.BigEndian.Uint32(body[randLen:headerLen])
	if uint64(size) > uint64(len(body)-headerLen) {
		return nil, fmt.Errorf("%w: declared message length exceeds the data", ErrMalformed)
	}
	end := headerLen + int(size)
	if subtle.ConstantTimeCompare(body[end:], c.receiverID) != 1 {
		return nil, ErrReceiverID
	}
	return body[headerLen:end:end], nil
}

// Encrypt encrypts plain for WeChat and returns the base64 ciphertext and its
// msg_signature for timestamp and nonce (the values the reply envelope carries;
// see EncryptReply). The 16 random bytes come from Rand. A message over
// MaxMessageSize is refused with ErrTooLarge; a failing Rand is reported
// wrapped.
func (c *Crypter) Encrypt(plain []byte, timestamp, nonce string) (encrypted, msgSignature string, err error) {
	if len(plain) > MaxMessageSize {
		return "", "", fmt.Errorf("%w: message over %d bytes", ErrTooLarge, MaxMessageSize)
	}
	size := headerLen + len(plain) + len(c.receiverID)
	pad := blockSize - size%blockSize
	buf := make([]byte, size+pad)
	r := c.Rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, buf[:randLen]); err != nil {
		return "", "", fmt.Errorf("msgcrypt: reading random bytes: %w", err)
	}
	binary.BigEndian.PutUint32(buf[randLen:headerLen], uint32(len(plain)))
	copy(buf[headerLen:], plain)
	copy(buf[headerLen+len(plain):], c.receiverID)
	for i := size; i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, c.iv[:]).CryptBlocks(buf, buf)
	encrypted = base64.StdEncoding.EncodeToString(buf)
	return encrypted, c.Sign(timestamp, nonce, encrypted), nil
}

// VerifyURL answers the URL verification request of WeCom and of callbacks in
// encrypted mode: it checks msgSignature and decrypts echostr (both query
// parameters), and returns the plaintext the handler must write as its
// response body. Errors are those of Decrypt.
//
// The Official Account's own server verification is not encrypted: check it
// with VerifySignature and answer its echostr unchanged.
func (c *Crypter) VerifyURL(msgSignature, timestamp, nonce, echostr string) ([]byte, error) {
	return c.Decrypt(msgSignature, timestamp, nonce, echostr)
}

// Format prints a Crypter as its receiver id only, whatever the verb, so that
// logging one with %v, %+v or %#v shows neither the token nor the key.
func (c Crypter) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "msgcrypt.Crypter{receiverID: %q}", c.receiverID)
}

// LogValue is the receiver id only, for the same reason as Format.
func (c Crypter) LogValue() slog.Value {
	return slog.GroupValue(slog.String("receiver_id", string(c.receiverID)))
}
