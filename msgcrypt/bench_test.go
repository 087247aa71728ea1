package msgcrypt

import (
	"bytes"
	"testing"
)

func benchMessage() []byte {
	return bytes.Repeat([]byte("<xml>0123456789</xml>"), 1024/21+1)[:1024]
}

func BenchmarkDecrypt1KiB(b *testing.B) {
	c := newVector(b)
	enc, sig, err := c.Encrypt(benchMessage(), "1700000000", "123456789")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decrypt(sig, "1700000000", "123456789", enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncrypt1KiB(b *testing.B) {
	c := newVector(b)
	msg := benchMessage()
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Encrypt(msg, "1700000000", "123456789"); err != nil {
			b.Fatal(err)
		}
	}
}
