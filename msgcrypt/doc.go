// Package msgcrypt implements WeChat's message encryption: the scheme that
// Official Accounts in safe mode, the Open Platform (third-party platforms) and
// WeCom use to encrypt callbacks and replies.
//
// A Crypter holds the three values configured on WeChat's side: the token, the
// 43-character EncodingAESKey and the receiver id (the appid of an Official
// Account, the component appid of a third-party platform, the corpid or suite id
// in WeCom):
//
//	c, err := msgcrypt.New(token, encodingAESKey, appID)
//	env, err := msgcrypt.ReadEnvelope(r.Body)                         // size-capped
//	plain, err := c.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt)
//
// What a Crypter promises:
//
//   - Decrypt checks the signature first, in constant time, so that nothing about
//     the key or the padding can be learnt from a forged message; then the length
//     (a whole number of 32-byte blocks), the PKCS#7 padding, the declared length
//     and the receiver id, strictly. Each failure is a sentinel error (ErrSignature,
//     ErrMalformed, ErrPadding, ErrReceiverID, ErrTooLarge) matched with errors.Is.
//   - No error, at any level of its Unwrap chain, quotes the token, the key or any
//     part of a decrypted message; printing a Crypter shows only its receiver id.
//   - Input is capped: envelopes and ciphertexts over MaxEnvelopeSize bytes,
//     messages over MaxMessageSize bytes are refused before any work is done.
//   - Encrypt is Decrypt's exact inverse: with the same 16 random bytes (see the
//     Rand field) it reproduces WeChat's ciphertext byte for byte.
//
// The scheme: the AES-256 key is the base64 decoding of EncodingAESKey + "=";
// the plaintext is 16 random bytes, the message length as 4 bytes big-endian, the
// message and the receiver id, PKCS#7-padded to a multiple of 32 bytes and
// encrypted with AES-CBC, the IV being the first 16 bytes of the key; the result
// travels in base64. The signature is the lower-case hex SHA-1 of the token, the
// timestamp, the nonce and the ciphertext, sorted and concatenated.
package msgcrypt
