package msgcrypt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
)

// Envelope is the outer XML of an encrypted callback:
//
//	<xml><ToUserName>...</ToUserName><Encrypt>...</Encrypt></xml>
//
// Official Accounts send ToUserName, WeCom adds AgentID, and the Open
// Platform's authorization events carry AppId instead. Other elements are
// ignored.
type Envelope struct {
	ToUserName string // the Official Account's original id, or the corpid
	AppID      string // AppId: the component appid (Open Platform)
	AgentID    string // the WeCom application, when there is one
	Encrypt    string // the base64 ciphertext, for Decrypt
}

// ReadEnvelope reads at most MaxEnvelopeSize bytes from r (a request body) and
// parses them as ParseEnvelope does. A longer body is refused with ErrTooLarge
// without being read further.
func ReadEnvelope(r io.Reader) (*Envelope, error) {
	body, err := io.ReadAll(io.LimitReader(r, MaxEnvelopeSize+1))
	if err != nil {
		return nil, fmt.Errorf("msgcrypt: reading envelope: %w", err)
	}
	return ParseEnvelope(body)
}

// ParseEnvelope parses the XML envelope of an encrypted callback. The root must
// be <xml>, its Encrypt element present, non-empty and single, and the known
// elements must hold text only; otherwise the error matches ErrMalformed. A body
// over MaxEnvelopeSize is refused with ErrTooLarge before it is parsed.
func ParseEnvelope(body []byte) (*Envelope, error) {
	if len(body) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: envelope over %d bytes", ErrTooLarge, MaxEnvelopeSize)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	root, err := firstElement(d)
	if err != nil {
		return nil, err
	}
	if root.Name.Local != "xml" || root.Name.Space != "" {
		return nil, fmt.Errorf("%w: envelope root is not <xml>", ErrMalformed)
	}
	env := new(Envelope)
	seen := map[*string]bool{}
	for {
		tok, err := d.Token()
		if err != nil {
			return nil, malformedXML(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			field := env.field(t.Name)
			if field == nil {
				if err := d.Skip(); err != nil {
					return nil, malformedXML(err)
				}
				continue
			}
			if seen[field] {
				return nil, fmt.Errorf("%w: envelope repeats <%s>", ErrMalformed, t.Name.Local)
			}
			seen[field] = true
			if *field, err = text(d); err != nil {
				return nil, err
			}
		case xml.EndElement:
			if env.Encrypt == "" {
				return nil, fmt.Errorf("%w: envelope has no Encrypt", ErrMalformed)
			}
			if err := trailing(d); err != nil {
				return nil, err
			}
			return env, nil
		}
	}
}

func (env *Envelope) field(n xml.Name) *string {
	if n.Space != "" {
		return nil
	}
	switch n.Local {
	case "ToUserName":
		return &env.ToUserName
	case "AppId":
		return &env.AppID
	case "AgentID":
		return &env.AgentID
	case "Encrypt":
		return &env.Encrypt
	}
	return nil
}

// firstElement skips the prolog (declaration, comments, white space) and
// returns the root element.
func firstElement(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, malformedXML(err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return xml.StartElement{}, fmt.Errorf("%w: text before the envelope", ErrMalformed)
			}
		case xml.EndElement:
			return xml.StartElement{}, fmt.Errorf("%w: envelope starts with an end tag", ErrMalformed)
		}
	}
}

// text reads the character data (CDATA or not) of an element up to its end tag
// and refuses nested elements.
func text(d *xml.Decoder) (string, error) {
	var b []byte
	for {
		tok, err := d.Token()
		if err != nil {
			return "", malformedXML(err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			b = append(b, t...)
		case xml.StartElement:
			return "", fmt.Errorf("%w: element inside an envelope field", ErrMalformed)
		case xml.EndElement:
			return string(bytes.TrimSpace(b)), nil
		}
	}
}

// trailing accepts only white space, comments and processing instructions after
// the root element.
func trailing(d *xml.Decoder) error {
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return malformedXML(err)
		}
		switch t := tok.(type) {
		case xml.StartElement, xml.EndElement:
			return fmt.Errorf("%w: content after the envelope", ErrMalformed)
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return fmt.Errorf("%w: content after the envelope", ErrMalformed)
			}
		}
	}
}

// malformedXML keeps the position the XML decoder reports but not its message,
// which may quote the input.
func malformedXML(err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: envelope ends early", ErrMalformed)
	}
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: XML syntax error on line %d", ErrMalformed, se.Line)
	}
	return fmt.Errorf("%w: XML error", ErrMalformed)
}

// DecryptEnvelope parses an encrypted callback body (as ParseEnvelope) and
// decrypts its Encrypt element (as Decrypt) with the msg_signature, timestamp
// and nonce of the request's query.
func (c *Crypter) DecryptEnvelope(msgSignature, timestamp, nonce string, body []byte) ([]byte, error) {
	env, err := ParseEnvelope(body)
	if err != nil {
		return nil, err
	}
	return c.Decrypt(msgSignature, timestamp, nonce, env.Encrypt)
}

// reply is the encrypted reply WeChat expects, in the order its documentation
// shows.
type reply struct {
	XMLName      xml.Name `xml:"xml"`
	Encrypt      cdata
	MsgSignature cdata
	TimeStamp    string
	Nonce        cdata
}

// cdata is an element whose text is written as CDATA, as WeChat's samples do.
type cdata struct {
	Text string `xml:",cdata"`
}

// EncryptReply encrypts a passive reply (plain XML) and returns the envelope to
// write as the response body:
//
//	<xml><Encrypt><![CDATA[...]]></Encrypt><MsgSignature><![CDATA[...]]></MsgSignature><TimeStamp>...</TimeStamp><Nonce><![CDATA[...]]></Nonce></xml>
//
// timestamp and nonce are chosen by the replier (usually the current Unix time
// and a random number). They must be printable ASCII (ErrMalformed otherwise):
// XML would alter other bytes in transit and the signature would no longer
// match. Other errors are those of Encrypt.
func (c *Crypter) EncryptReply(plain []byte, timestamp, nonce string) ([]byte, error) {
	if !printable(timestamp) || !printable(nonce) {
		return nil, fmt.Errorf("%w: timestamp and nonce must be printable ASCII", ErrMalformed)
	}
	enc, sig, err := c.Encrypt(plain, timestamp, nonce)
	if err != nil {
		return nil, err
	}
	out, err := xml.Marshal(reply{Encrypt: cdata{enc}, MsgSignature: cdata{sig}, TimeStamp: timestamp, Nonce: cdata{nonce}})
	if err != nil {
		return nil, fmt.Errorf("msgcrypt: building reply: %w", err) // only for text XML cannot carry
	}
	return out, nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
