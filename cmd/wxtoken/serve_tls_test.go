package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wxtoken test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServeProcessSpeaksTLS(t *testing.T) {
	t.Parallel()
	wx := newServer(t)
	key, hash := keygen(t)
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	cfg := serveConfig(wx.URL(), "store: {dir: "+t.TempDir()+"}\ntls: {cert_file: "+certFile+", key_file: "+keyFile+"}",
		map[string][2]string{"billing": {hash, "shop"}})
	p := startServe(t, cfg, serveEnv...)
	require.True(t, strings.HasPrefix(p.url, "https://"), p.url)

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequest("GET", p.url+"/v1/credentials/shop", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := hc.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	tok, _ := tokenAnswer(t, string(body))
	assert.Equal(t, wx.CurrentToken(appID), tok)

	// Go's TLS server answers a plain HTTP request with a 400 of its own.
	plain, err := http.Get(strings.Replace(p.url, "https://", "http://", 1) + "/healthz")
	require.NoError(t, err, "the TLS port answers plain HTTP with a refusal, not silence")
	refusal, err := io.ReadAll(plain.Body)
	plain.Body.Close()
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadRequest, plain.StatusCode, "plain HTTP on the TLS port is refused")
	assert.Contains(t, string(refusal), "HTTPS server")
	assert.NotContains(t, string(refusal), `"status"`, "the handler never saw it")
}

func TestServeCheckValidatesWithoutServing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "serve.yaml")
	_, hash := keygen(t)
	require.NoError(t, os.WriteFile(path, []byte(serveConfig("http://127.0.0.1:1", "store: {dir: "+dir+"}",
		map[string][2]string{"billing": {hash, "shop"}})), 0o600))
	env := map[string]string{"SHOP_APPSECRET": secret, "CORP_SECRET": "x"}
	r := runArgs(env, "serve", "--config", path, "--check")
	require.Equal(t, exitOK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "the configuration is valid: 3 credentials, 1 clients")

	r = runArgs(map[string]string{}, "serve", "--config", path, "--check")
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "credentials.shop.secret_env: the environment variable SHOP_APPSECRET is empty or unset")

	require.NoError(t, os.WriteFile(path, []byte("listen: 0.0.0.0:80\nsecret: "+secret+"\n"), 0o600))
	r = runArgs(env, "serve", "--config", path, "--check")
	assert.Equal(t, exitError, r.code)
	assert.Contains(t, r.stderr, "field secret not found")
	assert.NotContains(t, r.stderr, secret, "the decoder's error does not quote the value")

	r = runArgs(env, "serve", "--config", secret)
	assert.Equal(t, exitError, r.code)
	assert.Equal(t, "wxtoken serve: --config: cannot open the file: no such file or directory\n", r.stderr,
		"the path is not repeated: it may be a misplaced secret")

	for _, args := range [][]string{{"serve"}, {"serve", "--config"}, {"serve", "--config", path, "extra"}} {
		assert.Equal(t, exitUsage, runArgs(env, args...).code, args)
	}
}

func TestKeygenPrintsAKeyAndItsHash(t *testing.T) {
	t.Parallel()
	r := runArgs(nil, "keygen")
	require.Equal(t, exitOK, r.code)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	require.Len(t, lines, 2)
	assert.Regexp(t, `^key: wxt_[A-Za-z0-9_-]{43}$`, lines[0])
	assert.Regexp(t, `^key_hash: sha256:[0-9a-f]{64}$`, lines[1])
	assert.NotEqual(t, r.stdout, runArgs(nil, "keygen").stdout)
	assert.Equal(t, exitUsage, runArgs(nil, "keygen", "x").code)
}
