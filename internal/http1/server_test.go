package http1

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve starts a Server for h on a loopback port and returns it and its
// address.
func serve(t *testing.T, h http.Handler, configure ...func(*Server)) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, ln, h, configure...)
}

// serveOn is serve on the listener ln.
func serveOn(t *testing.T, ln net.Listener, h http.Handler, configure ...func(*Server)) (*Server, string) {
	s := &Server{Handler: h, HeaderTimeout: 2 * time.Second, IdleTimeout: 5 * time.Second,
		WriteTimeout: 5 * time.Second, MaxHeaderBytes: 8 << 10}
	for _, f := range configure {
		f(s)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.ServeConn(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s, ln.Addr().String()
}

// client is a raw connection to the server, reading responses with
// net/http's client parser.
type client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

func (c *client) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.c, raw); err != nil {
		c.t.Fatal(err)
	}
}

// sendInBackground writes raw without waiting: the server may answer,
// and close, before it has read it all.
func (c *client) sendInBackground(raw string) {
	go func() { _, _ = io.WriteString(c.c, raw) }()
}

// response reads one response to a request with method, and its body.
func (c *client) response(method string) (*http.Response, string) {
	c.t.Helper()
	r, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		c.t.Fatalf("reading the body: %v", err)
	}
	return r, string(body)
}

// closed reports whether the server closed the connection (after what
// has been read).
func (c *client) closed() bool {
	c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err := c.br.ReadByte()
	return err == io.EOF
}

const get = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

func TestResponses(t *testing.T) {
	long := strings.Repeat("L", 5000)
	mux := http.NewServeMux()
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<p>hi</p>") })
	mux.HandleFunc("/long", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, long[:1000])
		io.WriteString(w, long[1000:])
	})
	mux.HandleFunc("/declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5000")
		io.WriteString(w, long)
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "abc"); err != http.ErrBodyNotAllowed {
			t.Errorf("write to a 204: err = %v, want ErrBodyNotAllowed", err)
		}
	})
	mux.HandleFunc("/flushed", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "one")
		http.NewResponseController(w).Flush()
		if len(w.Header()) != 0 {
			t.Errorf("the server's own headers went into the handler's map: %v", w.Header())
		}
		io.WriteString(w, "two")
	})
	_, addr := serve(t, mux)

	for _, tc := range []struct {
		name, request, method string
		status                int
		body                  string
		header                map[string]string // "" for must be absent
		closes                bool
	}{
		{name: "small body gets a length and a sniffed type", request: "GET /short HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 200, body: "<p>hi</p>", header: map[string]string{"Content-Length": "9",
				"Content-Type": "text/html; charset=utf-8", "Transfer-Encoding": ""}},
		{name: "long body of unknown length is chunked", request: "GET /long HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 200, body: long, header: map[string]string{"Content-Length": "", "Transfer-Encoding": "chunked"}},
		{name: "declared length is kept", request: "GET /declared HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 200, body: long, header: map[string]string{"Content-Length": "5000"}},
		{name: "HTTP/1.0 long body ends with the connection", request: "GET /long HTTP/1.0\r\n\r\n",
			status: 200, body: long, header: map[string]string{"Transfer-Encoding": "", "Content-Length": ""}, closes: true},
		{name: "HTTP/1.0 keep-alive", request: "GET /short HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			status: 200, body: "<p>hi</p>", header: map[string]string{"Connection": "keep-alive", "Content-Length": "9"}},
		{name: "HEAD has the length and no body", request: "HEAD /short HTTP/1.1\r\nHost: x\r\n\r\n", method: "HEAD",
			status: 200, header: map[string]string{"Content-Length": "9"}},
		{name: "204 has no length and no body", request: "GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 204, header: map[string]string{"Content-Length": ""}},
		{name: "flush sends the headers, chunked", request: "GET /flushed HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 200, body: "onetwo", header: map[string]string{"Transfer-Encoding": "chunked"}},
		{name: "Connection: close is honoured", request: "GET /short HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			status: 200, body: "<p>hi</p>", header: map[string]string{"Connection": "close"}, closes: true},
		{name: "OPTIONS * is the server's", request: "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
			status: 200, header: map[string]string{"Content-Length": "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			c.send(tc.request)
			method := tc.method
			if method == "" {
				method = "GET"
			}
			r, body := c.response(method)
			if r.StatusCode != tc.status || body != tc.body {
				t.Errorf("got %d %.40q, want %d %.40q", r.StatusCode, body, tc.status, tc.body)
			}
			if r.Header.Get("Date") == "" {
				t.Error("no Date header")
			}
			for name, want := range tc.header {
				got := r.Header.Get(name)
				if name == "Transfer-Encoding" && len(r.TransferEncoding) > 0 {
					got = r.TransferEncoding[0]
				}
				if name == "Connection" && r.Close {
					got = "close" // net/http's parser takes it out of the header
				}
				if got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if tc.closes {
				if !c.closed() {
					t.Error("connection kept open")
				}
				return
			}
			c.send("GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, body := c.response("GET"); body != "<p>hi</p>" {
				t.Errorf("next request on the connection: %q", body)
			}
		})
	}
}

func TestPipelinedRequestsAnswerInOrder(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	c := dial(t, addr)
	var all strings.Builder
	for i := range 5 {
		all.WriteString("GET /" + string(rune('a'+i)) + " HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	c.send(all.String())
	for i := range 5 {
		if _, body := c.response("GET"); body != "/"+string(rune('a'+i)) {
			t.Errorf("response %d = %q", i, body)
		}
	}
}

func TestRequestBodies(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("read") != "" {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
			return
		}
		io.WriteString(w, "unread")
	}))
	t.Run("chunked body is decoded", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST /?read=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
		if _, body := c.response("POST"); body != "abcde" {
			t.Errorf("body = %q", body)
		}
	})
	t.Run("unread body is drained and the connection kept", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + get)
		if _, body := c.response("POST"); body != "unread" {
			t.Errorf("first body = %q", body)
		}
		if _, body := c.response("GET"); body != "unread" {
			t.Errorf("second body = %q", body)
		}
	})
	t.Run("body over the drain limit closes the connection", func(t *testing.T) {
		c := dial(t, addr)
		c.sendInBackground("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 400000\r\n\r\n" + strings.Repeat("x", 400000))
		r, _ := c.response("POST")
		if !r.Close || !c.closed() {
			t.Error("connection kept after a body too long to drain")
		}
	})
	t.Run("100-continue is sent when the body is read", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST /?read=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
		line, err := c.br.ReadString('\n')
		if err != nil || line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("first line = %q, %v", line, err)
		}
		c.br.ReadString('\n')
		c.send("abc")
		if _, body := c.response("POST"); body != "abc" {
			t.Errorf("body = %q", body)
		}
	})
	t.Run("body not asked for closes the connection", func(t *testing.T) {
		c := dial(t, addr)
		c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
		r, body := c.response("POST")
		if r.StatusCode != 200 || body != "unread" || !c.closed() {
			t.Errorf("got %d %q; want 200 \"unread\" and the connection closed", r.StatusCode, body)
		}
	})
}

func TestMalformedRequests(t *testing.T) {
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("handler called for %s %s", r.Method, r.RequestURI)
	}))
	for _, tc := range []struct {
		name, request string
		status        int
	}{
		{"garbage", "NOT HTTP AT ALL\r\n\r\n", 400},
		{"no Host on HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"control byte in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400},
		{"HTTP/2 request line", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
		{"HTTP/2 preface without h2c", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"unknown expectation", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nExpect: magic\r\n\r\nx", 417},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, addr)
			c.sendInBackground(tc.request)
			r, _ := c.response("GET")
			if r.StatusCode != tc.status {
				t.Errorf("status = %d, want %d", r.StatusCode, tc.status)
			}
			if !c.closed() {
				t.Error("connection left open after a malformed request")
			}
		})
	}
}

func TestHandlerEnds(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "part")
		panic(http.ErrAbortHandler)
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "abc")
	})
	mux.HandleFunc("/hijack", func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		extra, _ := buf.Reader.Peek(buf.Reader.Buffered())
		io.WriteString(conn, "RAW "+string(extra))
	})
	_, addr := serve(t, mux, func(s *Server) { s.ErrorLog = nil })
	for _, path := range []string{"/panic", "/abort"} {
		c := dial(t, addr)
		c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		if rest, _ := io.ReadAll(c.br); strings.Contains(string(rest), "200 OK") {
			t.Errorf("%s: a whole response was sent: %q", path, rest)
		}
	}
	c := dial(t, addr)
	c.send("GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	r, err := http.ReadResponse(c.br, nil)
	if err != nil || r.ContentLength != 10 {
		t.Fatalf("short: %v, length %d", err, r.ContentLength)
	}
	if b, _ := io.ReadAll(r.Body); string(b) != "abc" {
		t.Errorf("short body = %q, want the 3 bytes and the connection closed", b)
	}
	c = dial(t, addr)
	c.send("GET /hijack HTTP/1.1\r\nHost: x\r\n\r\nAFTER")
	if rest, _ := io.ReadAll(c.br); string(rest) != "RAW AFTER" {
		t.Errorf("hijacked connection read %q, want %q", rest, "RAW AFTER")
	}
}

func TestSendfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.bin")
	content := strings.Repeat("0123456789", 10000)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, path)
	}))
	c := dial(t, addr)
	c.send(get + get)
	for range 2 {
		r, body := c.response("GET")
		if r.ContentLength != int64(len(content)) || body != content {
			t.Fatalf("got length %d and %d bytes, want %d", r.ContentLength, len(body), len(content))
		}
	}
}

func TestH2CPreface(t *testing.T) {
	got := make(chan string, 1)
	_, addr := serve(t, http.NotFoundHandler(), func(s *Server) {
		s.H2C = true
		s.HTTP2 = func(c net.Conn, preread []byte) {
			got <- string(preread)
			c.Close()
		}
	})
	c := dial(t, addr)
	c.send(ClientPreface[:10])
	time.Sleep(50 * time.Millisecond) // a preface in two segments
	c.send(ClientPreface[10:])
	if s := <-got; s != ClientPreface {
		t.Errorf("H2C got %q", s)
	}
	c = dial(t, addr)
	c.send("GET / HTTP/1.0\r\n\r\n") // shorter than the preface: must not wait for more
	if r, _ := c.response("GET"); r.StatusCode != 404 {
		t.Errorf("HTTP/1.0 request: status %d", r.StatusCode)
	}
}

func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{})
	s, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}))
	idle := dial(t, addr)
	idle.send(get)
	idle.response("GET")
	busy := dial(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- s.Shutdown(context.Background()) }()
	if !idle.closed() {
		t.Error("idle connection not closed by Shutdown")
	}
	close(release)
	r, body := busy.response("GET")
	if body != "done" || !r.Close {
		t.Errorf("running request: %q, Connection: close %v", body, r.Close)
	}
	if err := <-stopped; err != nil || s.Open() != 0 {
		t.Errorf("Shutdown: %v, %d connections left", err, s.Open())
	}
}

func TestPeerClosed(t *testing.T) {
	asked := make(chan bool)
	proceed := make(chan struct{})
	_, addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prober := w.(interface{ PeerClosed() bool })
		asked <- prober.PeerClosed()
		<-proceed
		// The client closes without reading; the kernel may take a moment
		// to deliver its FIN.
		deadline := time.Now().Add(5 * time.Second)
		for !prober.PeerClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		asked <- prober.PeerClosed()
	}))
	c := dial(t, addr)
	c.send(get)
	if <-asked {
		t.Error("PeerClosed while the client is there")
	}
	c.c.Close()
	close(proceed)
	if !<-asked {
		t.Error("PeerClosed false after the client closed")
	}
}

// selfSigned returns a TLS configuration with a fresh certificate for
// 127.0.0.1, offering h2 and http/1.1 by ALPN.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos: []string{"h2", "http/1.1"}}
}

func TestTLS(t *testing.T) {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", selfSigned(t))
	if err != nil {
		t.Fatal(err)
	}
	h2 := make(chan string, 1)
	_, addr := serveOn(t, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || !r.TLS.HandshakeComplete {
			t.Error("request over TLS without its TLS state")
		}
		io.WriteString(w, "secure")
	}), func(s *Server) {
		s.HTTP2 = func(c net.Conn, _ []byte) {
			defer c.Close()
			if tc, ok := c.(*tls.Conn); ok {
				h2 <- tc.ConnectionState().NegotiatedProtocol
			} else {
				h2 <- "not a *tls.Conn"
			}
		}
	})
	dialTLS := func(protos ...string) *tls.Conn {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: protos})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	t.Run("HTTP/1.1 carries the TLS state", func(t *testing.T) {
		c := dialTLS("http/1.1")
		io.WriteString(c, get)
		r, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(r.Body); string(b) != "secure" {
			t.Errorf("body %q", b)
		}
	})
	t.Run("h2 goes to HTTP2 as it is", func(t *testing.T) {
		dialTLS("h2")
		if got := <-h2; got != "h2" {
			t.Errorf("HTTP2 got %q", got)
		}
	})
	t.Run("plain HTTP gets 400", func(t *testing.T) {
		c := dial(t, addr)
		c.send(get)
		if line, _ := c.br.ReadString('\n'); line != "HTTP/1.0 400 Bad Request\r\n" {
			t.Errorf("answer %q", line)
		}
	})
}
