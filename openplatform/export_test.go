package openplatform

import "github.com/wxtoken/wxtoken"

// DecodeAnswer exposes decodeAnswer to the fuzz tests.
func DecodeAnswer(answer []byte, path string, out any) error {
	return decodeAnswer(answer, path, out, classifyWithToken, []string{"SECRET-fuzz"})
}

// ClassifyForTest exposes the errcode table.
func ClassifyForTest(code int) wxtoken.ErrorKind { return classify(code) }
