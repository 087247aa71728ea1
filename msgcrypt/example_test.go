package msgcrypt_test

import (
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxtoken/wxtoken/msgcrypt"
)

// The configuration and messages of a published WeCom test vector.
const (
	token          = "123456"
	encodingAESKey = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
	corpID         = "wx49f0ab532d5d035a"
)

func ExampleCrypter_Decrypt() {
	c, err := msgcrypt.New(token, encodingAESKey, corpID)
	if err != nil {
		log.Fatal(err)
	}
	plain, err := c.Decrypt("74d92dfeb87ba7c714f89d98870ae5eb62dff26d", "1411525903", "461056294",
		"RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(plain))
	// Output:
	// <xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>
	// <FromUserName><![CDATA[messense]]></FromUserName>
	// <CreateTime>1411525903</CreateTime>
	// <MsgType><![CDATA[text]]></MsgType>
	// <Content><![CDATA[test]]></Content>
	// <MsgId>4363689963896700987</MsgId>
	// <AgentID>1</AgentID>
	// </xml>
}

func ExampleCrypter_VerifyURL() {
	c, err := msgcrypt.New(token, encodingAESKey, corpID)
	if err != nil {
		log.Fatal(err)
	}
	echo, err := c.VerifyURL("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425",
		"4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(echo)) // the handler writes this as its response body
	// Output: 5927782489442352469
}

func ExampleCrypter_EncryptReply() {
	c, err := msgcrypt.New(token, encodingAESKey, corpID)
	if err != nil {
		log.Fatal(err)
	}
	c.Rand = strings.NewReader("1234567890123456") // only to make the output reproducible
	out, err := c.EncryptReply([]byte("<xml><Content>hi</Content></xml>"), "1411525903", "461056294")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(out))
	// Output:
	// <xml><Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkI2kVC4yWL3UXRoNuestxn090gpLQgP1c8bk56s4orXXiZ7xmxpFRpAVinE5/lfOrgNxXuSrvHimWrghJnHKxU1ejFjuvt0ErTeFaYdYPdBU]]></Encrypt><MsgSignature><![CDATA[700ea2e8422c1c54eaaeca9c9e31e676bde7e327]]></MsgSignature><TimeStamp>1411525903</TimeStamp><Nonce><![CDATA[461056294]]></Nonce></xml>
}

// A callback handler: decrypt the message, reply with an encrypted message.
func Example_handler() {
	c, err := msgcrypt.New(token, encodingAESKey, corpID)
	if err != nil {
		log.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		env, err := msgcrypt.ReadEnvelope(r.Body) // reads at most MaxEnvelopeSize bytes
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		plain, err := c.Decrypt(q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), env.Encrypt)
		if err != nil {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		_ = plain // parse the message here
		reply, err := c.EncryptReply([]byte("<xml><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[ok]]></Content></xml>"),
			strconv.FormatInt(time.Now().Unix(), 10), q.Get("nonce"))
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.Write(reply)
	})

	// What WeCom posts (the published vector), and a forged copy.
	q := url.Values{"msg_signature": {"74d92dfeb87ba7c714f89d98870ae5eb62dff26d"}, "timestamp": {"1411525903"}, "nonce": {"461056294"}}
	body := "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName><Encrypt><![CDATA[RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=]]></Encrypt><AgentID><![CDATA[1]]></AgentID></xml>"
	for _, nonce := range []string{"461056294", "461056295"} {
		q.Set("nonce", nonce)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/callback?"+q.Encode(), strings.NewReader(body)))
		fmt.Println(rec.Code, strings.HasPrefix(rec.Body.String(), "<xml><Encrypt>"))
	}
	// Output:
	// 200 true
	// 403 false
}
