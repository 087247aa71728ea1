package msgcrypt

import "errors"

// The errors of this package. Functions wrap them with a short reason; match them
// with errors.Is. None of them, nor the reasons, quotes a key, a token or a
// decrypted message.
var (
	// ErrInvalidKey is returned by New when the EncodingAESKey is not 43
	// characters of base64.
	ErrInvalidKey = errors.New("msgcrypt: EncodingAESKey must be 43 characters of base64")
	// ErrInvalidToken is returned by New when the token is empty: a signature
	// without a secret would prove nothing.
	ErrInvalidToken = errors.New("msgcrypt: token must not be empty")
	// ErrSignature means the msg_signature does not match the token, timestamp,
	// nonce and ciphertext: the message did not come from WeChat, or was altered,
	// or the token is not the one configured on WeChat's side.
	ErrSignature = errors.New("msgcrypt: signature mismatch")
	// ErrMalformed means the input does not have the expected shape: not base64,
	// not a whole number of blocks, a declared length beyond the data, or an
	// envelope that is not the expected XML.
	ErrMalformed = errors.New("msgcrypt: malformed input")
	// ErrPadding means the decrypted data does not end in valid PKCS#7 padding
	// (1 to 32 bytes): typically a wrong EncodingAESKey.
	ErrPadding = errors.New("msgcrypt: invalid padding")
	// ErrReceiverID means the message decrypted but was addressed to another
	// receiver (another appid, corpid or suite id).
	ErrReceiverID = errors.New("msgcrypt: receiver id mismatch")
	// ErrTooLarge means an input exceeds MaxEnvelopeSize or MaxMessageSize.
	ErrTooLarge = errors.New("msgcrypt: input too large")
)
