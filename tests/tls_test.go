package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---- certificates, servers and clients for the HTTPS tests ----

// testCert is a self-signed certificate for 127.0.0.1 and localhost,
// trusted by Pool.
type testCert struct {
	CertPEM, KeyPEM []byte
	Key             *ecdsa.PrivateKey
	Pool            *x509.CertPool
}

// newCert makes a testCert whose subject's common name is cn.
func newCert(t testing.TB, cn string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return testCert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Key:     key,
		Pool:    pool,
	}
}

// fileIn writes data to name in dir and returns its path.
func fileIn(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	writeFile(t, p, string(data))
	return p
}

// files writes the certificate and key to dir and returns the flags that
// serve them.
func (c testCert) files(t testing.TB, dir string) []string {
	t.Helper()
	return []string{"--certfile", fileIn(t, dir, "cert.pem", c.CertPEM),
		"--keyfile", fileIn(t, dir, "key.pem", c.KeyPEM)}
}

// tlsServer is a wsgo serving HTTPS beside HTTP.
type tlsServer struct {
	*server
	TLSURL  string // https://127.0.0.1:PORT
	TLSAddr string
}

var listenTLSRE = regexp.MustCompile(`wsgo: listening on (https://(127\.0\.0\.1:\d+))`)

// startTLS starts wsgo on module with --https-socket on a free port as
// well as --http-socket, and args (which name the certificate).
func startTLS(t testing.TB, module string, args ...string) *tlsServer {
	t.Helper()
	s := startServer(t, module, append([]string{"--https-socket", "127.0.0.1:0"}, args...)...)
	if !s.stderr.waitUntil(listenTLSRE.MatchString, waitTimeout, s.exited) {
		t.Fatalf("no %q line; stderr:\n%s", "wsgo: listening on https://", tail(s.Stderr()))
	}
	m := listenTLSRE.FindStringSubmatch(s.Stderr())
	return &tlsServer{server: s, TLSURL: m[1], TLSAddr: m[2]}
}

// h2Client is an HTTPS client trusting pool that uses HTTP/2.
func h2Client(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true, DisableCompression: true}}
}

// h1TLSClient is an HTTPS client trusting pool that offers only HTTP/1.1.
func h1TLSClient(pool *x509.CertPool) *http.Client {
	var p http.Protocols
	p.SetHTTP1(true)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: &p, DisableCompression: true}}
}

// h2cClient speaks cleartext HTTP/2 with prior knowledge.
func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Protocols: &p, DisableCompression: true}}
}

// getOver GETs url with c and fails the test unless the answer is 200 over
// proto.
func getOver(t testing.TB, c *http.Client, url, proto string) *response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := doWith(t, c, req)
	wantStatus(t, r, 200)
	if r.Proto != proto {
		t.Fatalf("GET %s went over %s, want %s", url, r.Proto, proto)
	}
	return r
}

// servedCert returns the leaf certificate that addr presents to a new
// connection.
func servedCert(t testing.TB, addr string) *x509.Certificate {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0]
}

// ---- tests ----

// TestHTTPSEnviron checks what an app sees over HTTPS, by HTTP/2 and by
// HTTP/1.1, next to plain HTTP on the other socket.
func TestHTTPSEnviron(t *testing.T) {
	t.Parallel()
	cert := newCert(t, "wsgo-environ")
	s := startTLS(t, "envapp", cert.files(t, t.TempDir())...)
	_, port, _ := net.SplitHostPort(s.TLSAddr)
	for _, tc := range []struct {
		name, proto string
		c           *http.Client
	}{
		{"h2", "HTTP/2.0", h2Client(cert.Pool)},
		{"http/1.1", "HTTP/1.1", h1TLSClient(cert.Pool)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.TLSURL+"/some/path?a=1", strings.NewReader("body!"))
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Add("X-Multi", "one")
			req.Header.Add("X-Multi", "two")
			req.Header.Add("Cookie", "a=1")
			req.Header.Add("Cookie", "b=2")
			r := doWith(t, tc.c, req)
			wantStatus(t, r, 200)
			if r.Proto != tc.proto {
				t.Fatalf("response over %s, want %s", r.Proto, tc.proto)
			}
			env := decodeEnviron(t, r)
			env.wantStr(t, "wsgi.url_scheme", "https")
			env.wantStr(t, "HTTPS", "on")
			env.wantStr(t, "SERVER_PROTOCOL", tc.proto)
			env.wantStr(t, "REQUEST_METHOD", "POST")
			env.wantStr(t, "PATH_INFO", "/some/path")
			env.wantStr(t, "QUERY_STRING", "a=1")
			env.wantStr(t, "HTTP_HOST", s.TLSAddr)
			env.wantStr(t, "SERVER_NAME", "127.0.0.1")
			env.wantStr(t, "SERVER_PORT", port)
			env.wantStr(t, "CONTENT_TYPE", "text/plain")
			env.wantStr(t, "CONTENT_LENGTH", "5")
			env.wantStr(t, "HTTP_X_MULTI", "one, two")
			env.wantStr(t, "HTTP_COOKIE", "a=1; b=2")
			env.wantStr(t, "_body", "body!")
			for key := range env {
				if strings.Contains(key, ":") || strings.HasPrefix(key, "HTTP__") {
					t.Errorf("environ has %s: an HTTP/2 pseudo-header", key)
				}
			}
		})
	}
	t.Run("plain http", func(t *testing.T) {
		env := decodeEnviron(t, get(t, s.URL+"/"))
		env.wantStr(t, "wsgi.url_scheme", "http")
		env.wantStr(t, "SERVER_PROTOCOL", "HTTP/1.1")
		env.wantAbsent(t, "HTTPS")
	})
	t.Run("https behind a trusted proxy", func(t *testing.T) {
		req, _ := http.NewRequest("GET", s.URL+"/", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		env := decodeEnviron(t, do(t, req))
		env.wantStr(t, "wsgi.url_scheme", "https")
		env.wantStr(t, "HTTPS", "on")
	})
}

// TestTLSDefaults checks the modern defaults: no TLS below 1.2, no
// cipher suite without forward secrecy and AEAD under 1.2, and ALPN's
// choice of HTTP/2 before HTTP/1.1.
func TestTLSDefaults(t *testing.T) {
	t.Parallel()
	cert := newCert(t, "wsgo-defaults")
	s := startTLS(t, "hello", cert.files(t, t.TempDir())...)
	dial := func(cfg *tls.Config) (tls.ConnectionState, error) {
		cfg.RootCAs = cert.Pool
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", s.TLSAddr, cfg)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		return conn.ConnectionState(), nil
	}
	if _, err := dial(&tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	if _, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}); err == nil {
		t.Error("a TLS 1.2 handshake with only a CBC cipher suite succeeded")
	}
	st, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	if name := tls.CipherSuiteName(st.CipherSuite); !strings.Contains(name, "ECDHE") {
		t.Errorf("TLS 1.2 negotiated %s", name)
	}
	st, err = dial(&tls.Config{NextProtos: []string{"http/1.1", "h2"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "h2" {
		t.Errorf("negotiated version %x, ALPN %q; want TLS 1.3 and h2", st.Version, st.NegotiatedProtocol)
	}
	// A client that does not offer ALPN speaks HTTP/1.1.
	getOver(t, h1TLSClient(cert.Pool), s.TLSURL+"/", "HTTP/1.1")
	// Plain HTTP sent to the HTTPS socket is refused, not misread.
	conn, err := net.DialTimeout("tcp", s.TLSAddr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	_, _ = io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(b), "HTTP/1.0 400") {
		t.Errorf("plain HTTP to the HTTPS socket got %q, want a 400", b)
	}
}

// TestHTTPSCertificateFiles serves a certificate and key from one
// combined file, and keys encrypted under a passphrase: PKCS#8 (what
// OpenSSL writes by default) and the legacy PEM encryption.
func TestHTTPSCertificateFiles(t *testing.T) {
	t.Parallel()
	cert := newCert(t, "wsgo-files")
	dir := t.TempDir()
	keyDER, err := x509.MarshalECPrivateKey(cert.Key)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the legacy encryption is what is under test
	legacy, err := x509.EncryptPEMBlock(rand.Reader, "EC PRIVATE KEY", keyDER, []byte("s3cret"), x509.PEMCipherAES256)
	if err != nil {
		t.Fatal(err)
	}
	// OpenSSL 3's "openssl pkcs8 -topk8" output for internal/tlsconf's
	// fixture key, with its certificate: PBES2, PBKDF2-SHA256, AES-256-CBC.
	fixtures := filepath.Join("..", "internal", "tlsconf", "testdata")
	fixtureCert, err := os.ReadFile(filepath.Join(fixtures, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	fixturePool := x509.NewCertPool()
	fixturePool.AppendCertsFromPEM(fixtureCert)
	pkcs8Key, err := filepath.Abs(filepath.Join(fixtures, "key-pkcs8-aes256.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		pool *x509.CertPool
		cn   string
	}{
		{"combined cert and key", []string{"--certfile",
			fileIn(t, dir, "combined.pem", append(append([]byte{}, cert.KeyPEM...), cert.CertPEM...))},
			cert.Pool, "wsgo-files"},
		{"legacy encrypted key in the combined file", []string{"--passphrase", "s3cret", "--certfile",
			fileIn(t, dir, "legacy.pem", append(pem.EncodeToMemory(legacy), cert.CertPEM...))},
			cert.Pool, "wsgo-files"},
		{"PKCS#8 encrypted key", []string{"--passphrase", "secret", "--keyfile", pkcs8Key,
			"--certfile", fileIn(t, dir, "fixture.pem", fixtureCert)}, fixturePool, "wsgo-test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startTLS(t, "h2app", tc.args...)
			r := getOver(t, h2Client(tc.pool), s.TLSURL+"/", "HTTP/2.0")
			if string(r.Body) != "ok" {
				t.Errorf("body %q", r.Body)
			}
			if cn := servedCert(t, s.TLSAddr).Subject.CommonName; cn != tc.cn {
				t.Errorf("served certificate %q, want %q", cn, tc.cn)
			}
		})
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"wrong passphrase", []string{"--passphrase", "nope", "--keyfile", pkcs8Key,
			"--certfile", filepath.Join(dir, "fixture.pem")}, "wrong --passphrase"},
		{"no passphrase", []string{"--certfile", filepath.Join(dir, "legacy.pem")}, "give its --passphrase"},
		{"missing file", []string{"--certfile", filepath.Join(dir, "missing.pem")}, "--certfile"},
		{"key of another certificate", []string{"--certfile", filepath.Join(dir, "fixture.pem"),
			"--keyfile", fileIn(t, dir, "other.pem", cert.KeyPEM)}, "does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runWsgo(t, append([]string{"--module", "hello", "--chdir", testdataDir(t),
				"--https-socket", "127.0.0.1:0"}, tc.args...)...)
			if res.ExitCode != 2 || !strings.Contains(res.Stderr, tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", res.ExitCode, res.Stderr, tc.want)
			}
		})
	}
}

// TestTLSSelfSigned serves a throw-away certificate, says so in the log,
// and serves the same one from every worker process.
func TestTLSSelfSigned(t *testing.T) {
	t.Parallel()
	s := startTLS(t, "h2app", "--tls-self-signed", "--processes", "2")
	m := regexp.MustCompile(`level=WARN msg="--tls-self-signed: serving HTTPS with a throw-away self-signed certificate[^"]*" names=localhost,127\.0\.0\.1,::1 expires=\S+ sha256=([0-9a-f]{64})`).
		FindStringSubmatch(s.Stderr())
	if m == nil {
		t.Fatalf("no self-signed warning in the log:\n%s", s.Stderr())
	}
	for i := 0; i < 8; i++ { // new connections, spread over both processes
		leaf := servedCert(t, s.TLSAddr)
		sum := sha256.Sum256(leaf.Raw)
		if hex.EncodeToString(sum[:]) != m[1] {
			t.Fatalf("connection %d got a certificate other than the logged one", i)
		}
		if leaf.Issuer.String() != leaf.Subject.String() || leaf.VerifyHostname("localhost") != nil {
			t.Fatalf("certificate %v is not a self-signed one for localhost", leaf.Subject)
		}
	}
	insecure := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	// The app never sees the generated key in its environment.
	if r := getOver(t, insecure, s.TLSURL+"/environ-has-key", "HTTP/2.0"); string(r.Body) != "False" {
		t.Errorf("the app's os.environ holds the private key")
	}
}

// TestHTTPSOnly serves HTTPS alone: --http-socket's default is not served
// unless given.
func TestHTTPSOnly(t *testing.T) {
	t.Parallel()
	cert := newCert(t, "wsgo-only")
	args := append([]string{"--module", "hello", "--chdir", testdataDir(t), "--https-socket", "127.0.0.1:0"},
		cert.files(t, t.TempDir())...)
	cmd := exec.Command(wsgoBin(t), args...)
	cmd.Env = cleanEnv()
	stderr := newStream()
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
		}
	}()
	if !stderr.waitUntil(listenTLSRE.MatchString, readyTimeout, done) {
		t.Fatalf("no HTTPS listening line; stderr:\n%s", stderr)
	}
	if strings.Contains(stderr.String(), "listening on http://") {
		t.Errorf("plain HTTP served without --http-socket:\n%s", stderr)
	}
	getOver(t, h2Client(cert.Pool), listenTLSRE.FindStringSubmatch(stderr.String())[1]+"/", "HTTP/2.0")
}

// TestTLSCertificateReload replaces the certificate files and sends
// SIGHUP: new connections get the new certificate, while a response
// streaming on an old connection carries on to its end.
func TestTLSCertificateReload(t *testing.T) {
	t.Parallel()
	old, renewed := newCert(t, "wsgo-old"), newCert(t, "wsgo-new")
	dir := t.TempDir()
	s := startTLS(t, "h2app", old.files(t, dir)...)
	pool := old.Pool.Clone()
	pool.AppendCertsFromPEM(renewed.CertPEM)
	c := h2Client(pool)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.TLSURL+"/stream?n=15&delay=0.2", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.TLS.PeerCertificates[0].Subject.CommonName != "wsgo-old" || resp.ProtoMajor != 2 {
		t.Fatalf("first connection: %s over %s", resp.TLS.PeerCertificates[0].Subject.CommonName, resp.Proto)
	}

	renewed.files(t, dir) // the same file names as old's
	offset := s.stderr.Len()
	s.Signal(t, syscall.SIGHUP)
	s.WaitStderrAfter(t, offset, "reload done")
	// An old worker may accept a last connection or two before its SIGTERM
	// closes its listener; they are served, with the old certificate.
	waitFor(t, waitTimeout, "new connections to get the new certificate", func() bool {
		return servedCert(t, s.TLSAddr).Subject.CommonName == "wsgo-new"
	})
	r := getOver(t, h2Client(pool), s.TLSURL+"/", "HTTP/2.0")
	if string(r.Body) != "ok" {
		t.Errorf("body %q", r.Body)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("the response streaming across the reload broke: %v (got %q)", err, body)
	}
	if n := strings.Count(string(body), "chunk "); n != 15 {
		t.Errorf("the response streaming across the reload has %d chunks, want 15: %q", n, body)
	}
}

// TestTLSParkHTTP1 parks an HTTP/1.1 request over TLS, whose connection is
// taken out of the server and given back: its retry still sees https.
func TestTLSParkHTTP1(t *testing.T) {
	t.Parallel()
	cert := newCert(t, "wsgo-park")
	s := startTLS(t, "h2app", cert.files(t, t.TempDir())...)
	c := h1TLSClient(cert.Pool)
	got := make(chan *response, 1)
	go func() {
		req, _ := http.NewRequest("POST", s.TLSURL+"/park?ch=tls1", strings.NewReader("abc"))
		resp, err := c.Do(req)
		if err != nil {
			got <- &response{StatusLine: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got <- &response{Status: resp.StatusCode, StatusLine: resp.Status, Body: b, Proto: resp.Proto}
	}()
	waitNotified(t, s.URL, "ch=tls1&action=retry&arg=again")
	r := <-got
	wantStatus(t, r, 200)
	if want := "retried arg=again body=abc proto=HTTP/1.1 scheme=https"; string(r.Body) != want {
		t.Errorf("retry answered %q, want %q", r.Body, want)
	}
	// Keep-alive goes on over the connection given back.
	if r := getOver(t, c, s.TLSURL+"/proto", "HTTP/1.1"); string(r.Body) != "HTTP/1.1 https on" {
		t.Errorf("next request on the connection: %q", r.Body)
	}
}

// waitNotified notifies the h2app channel in query (over plain HTTP at
// base) until it wakes a parked request.
func waitNotified(t testing.TB, base, query string) {
	t.Helper()
	waitFor(t, waitTimeout, "a parked request to wake ("+query+")", func() bool {
		return string(get(t, base+"/notify?"+query).Body) == "1"
	})
}
