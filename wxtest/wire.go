package wxtest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
)

// WeChat error codes the fake answers with. The messages are WeChat's wording,
// without the URLs WeChat sometimes appends.
const (
	CodeOK                = 0
	CodeInvalidCredential = 40001 // bad secret at the token endpoints; bad token elsewhere
	CodeInvalidGrantType  = 40002
	CodeInvalidMediaID    = 40007
	CodeInvalidAppID      = 40013
	CodeInvalidToken      = 40014 // WeCom's answer for an unknown or revoked token
	CodeInvalidSecret     = 40125 // what newer WeChat answers for a wrong secret; see WithSecretErrcode
	CodeMissingToken      = 41001
	CodeMissingAppID      = 41002
	CodeMissingSecret     = 41004
	CodeTokenExpired      = 42001
	CodeRequireGET        = 43001
	CodeRequirePOST       = 43002
	CodeDailyQuota        = 45009
	CodeMinuteQuota       = 45011
	CodeDataFormat        = 47001
	CodeInvalidArgs       = 40097 // a ticket type the endpoint does not know
	CodeIPNotAllowed      = 60020 // WeCom: the caller's IP is not a trusted IP of the corp
)

// errmsg returns the message WeChat sends with code, or a generic one.
func errmsg(code int) string {
	switch code {
	case CodeOK:
		return "ok"
	case -1:
		return "system error"
	case CodeInvalidCredential:
		return "invalid credential, access_token is invalid or not latest"
	case CodeInvalidGrantType:
		return "invalid grant_type"
	case CodeInvalidMediaID:
		return "invalid media_id"
	case CodeInvalidAppID:
		return "invalid appid"
	case CodeInvalidSecret:
		return "invalid appsecret"
	case CodeMissingToken:
		return "access_token missing"
	case CodeMissingAppID:
		return "appid missing"
	case CodeMissingSecret:
		return "appsecret missing"
	case CodeTokenExpired:
		return "access_token expired"
	case CodeRequireGET:
		return "require GET method"
	case CodeRequirePOST:
		return "require POST method"
	case CodeDailyQuota:
		return "reach max api daily quota limit"
	case CodeMinuteQuota:
		return "api minute-quota reach limit mustslower retry next minute"
	case CodeDataFormat:
		return "data format error"
	case CodeInvalidToken:
		return "invalid access_token"
	case CodeInvalidArgs:
		return "invalid args"
	case CodeIPNotAllowed:
		return "not allow to access from your ip"
	}
	return "errcode " + strconv.Itoa(code)
}

// Content types WeChat uses: the token endpoints label their JSON properly,
// many business endpoints send the same JSON as text/plain.
const (
	contentJSON = "application/json; encoding=utf-8"
	contentText = "text/plain"
)

type errorBody struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

type tokenBody struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// writeJSON sends v with HTTP 200, as WeChat does for successes and errors alike.
func writeJSON(w http.ResponseWriter, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("wxtest: marshal response: " + err.Error()) // only our own types get here
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// randomToken returns a fresh access_token: 136 characters of [A-Za-z0-9_-],
// about the length of WeChat's.
func randomToken() string {
	b := make([]byte, 102)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// rid imitates the request id WeChat appends to every errmsg.
func rid() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:16] + "-" + h[16:]
}
