package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// h2Setup is a server with HTTPS and --h2c, and a client of each kind of
// HTTP/2 for it.
type h2Setup struct {
	s    *tlsServer
	cert testCert
	// kinds are the ways to speak HTTP/2 to it: over TLS and cleartext.
	kinds []h2Kind
}

type h2Kind struct {
	name   string
	base   string // URL without the path
	client *http.Client
	scheme string // what the app sees
}

// startH2 starts module with HTTPS and --h2c, and extra args.
func startH2(t testing.TB, module string, args ...string) *h2Setup {
	t.Helper()
	cert := newCert(t, "wsgo-h2")
	s := startTLS(t, module, append(append(cert.files(t, t.TempDir()), "--h2c"), args...)...)
	return &h2Setup{s: s, cert: cert, kinds: []h2Kind{
		{"h2", s.TLSURL, h2Client(cert.Pool), "https"},
		{"h2c", s.URL, h2cClient(), "http"},
	}}
}

// TestH2Streaming checks that a streamed response's chunks travel as the
// app yields them, over both kinds of HTTP/2.
func TestH2Streaming(t *testing.T) {
	t.Parallel()
	h := startH2(t, "h2app")
	for _, k := range h.kinds {
		t.Run(k.name, func(t *testing.T) {
			start := time.Now()
			resp, err := k.client.Get(k.base + "/stream?n=3&delay=0.6")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.ContentLength != -1 {
				t.Fatalf("response over %s with length %d, want HTTP/2 and no length", resp.Proto, resp.ContentLength)
			}
			first := make([]byte, len("chunk 0\n"))
			if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "chunk 0\n" {
				t.Fatalf("first chunk %q, %v", first, err)
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Errorf("first chunk after %v: held back until more came", d)
			}
			rest, err := io.ReadAll(resp.Body)
			if err != nil || string(rest) != "chunk 1\nchunk 2\n" {
				t.Errorf("rest %q, %v", rest, err)
			}
		})
	}
}

// TestH2RequestBodies posts bodies over HTTP/2, with and without a
// declared length, smaller and larger than the 1 MiB the front buffers.
func TestH2RequestBodies(t *testing.T) {
	t.Parallel()
	h := startH2(t, "inputapp")
	small := []byte("a small body")
	large := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	for _, k := range h.kinds {
		for _, tc := range []struct {
			name    string
			body    []byte
			unknown bool
		}{
			{"small", small, false},
			{"small without length", small, true},
			{"3 MiB", large, false},
			{"3 MiB without length", large, true},
		} {
			t.Run(k.name+"/"+tc.name, func(t *testing.T) {
				req, _ := http.NewRequest("POST", k.base+"/hash", bytes.NewReader(tc.body))
				if tc.unknown {
					req.Body = io.NopCloser(bytes.NewReader(tc.body))
					req.ContentLength = -1
				}
				r := doWith(t, k.client, req)
				wantStatus(t, r, 200)
				if r.Proto != "HTTP/2.0" {
					t.Fatalf("over %s", r.Proto)
				}
				var out struct {
					SHA256        string  `json:"sha256"`
					Length        int     `json:"length"`
					ContentLength *string `json:"content_length"`
				}
				if err := json.Unmarshal(r.Body, &out); err != nil {
					t.Fatalf("%v: %s", err, r.Body)
				}
				sum := sha256.Sum256(tc.body)
				if out.Length != len(tc.body) || out.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("app read %d bytes (%s), want %d", out.Length, out.SHA256, len(tc.body))
				}
				// Like a chunked HTTP/1.1 body: a length once the whole body is
				// buffered, none when it is not.
				wantCL := !tc.unknown || len(tc.body) < 1<<20
				if (out.ContentLength != nil) != wantCL {
					t.Errorf("CONTENT_LENGTH %v, want one: %v", out.ContentLength, wantCL)
				}
			})
		}
	}
}

// TestH2ResetStream resets the stream of a response being streamed: the
// worker stops iterating, calls the body's close() and is free for the
// next request, and the connection's other streams go on.
func TestH2ResetStream(t *testing.T) {
	t.Parallel()
	h := startH2(t, "h2app", "--workers", "1")
	for i, k := range h.kinds {
		t.Run(k.name, func(t *testing.T) {
			offset := h.s.stderr.Len()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", k.base+"/forever", nil)
			resp, err := k.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			h.s.WaitStderrAfter(t, offset, "h2app: forever started")
			if _, err := io.ReadFull(resp.Body, make([]byte, 4096)); err != nil {
				t.Fatal(err)
			}
			cancel() // RST_STREAM (CANCEL)
			resp.Body.Close()
			// With one worker, this is answered only once /forever has let go.
			start := time.Now()
			waitFor(t, waitTimeout, "close() of the reset response", func() bool {
				return string(getOver(t, k.client, k.base+"/closes", "HTTP/2.0").Body) == fmt.Sprint(i+1)
			})
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("the worker took %v to let go of the reset stream", d)
			}
		})
	}
}

// TestH2C checks cleartext HTTP/2 with prior knowledge and by upgrade, and
// that without --h2c the plain socket speaks HTTP/1.1 only.
func TestH2C(t *testing.T) {
	t.Parallel()
	h := startH2(t, "h2app")
	t.Run("prior knowledge", func(t *testing.T) {
		if r := getOver(t, h2cClient(), h.s.URL+"/proto", "HTTP/2.0"); string(r.Body) != "HTTP/2.0 http -" {
			t.Errorf("body %q", r.Body)
		}
	})
	t.Run("upgrade", func(t *testing.T) {
		// A header long enough that the re-encoded request spans a HEADERS
		// and a CONTINUATION frame.
		head, body := h2cUpgrade(t, h.s.Addr, "GET /proto?x=1 HTTP/1.1\r\nHost: example.test\r\nX-Test: yes\r\n"+
			"X-Long: "+strings.Repeat("L", 20000)+"\r\n"+
			"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 101 ") {
			t.Fatalf("upgrade answered %q", head)
		}
		if body != "HTTP/2.0 http -" {
			t.Errorf("stream 1 answered %q", body)
		}
		h.s.WaitStdout(t, `"GET /proto?x=1 HTTP/2.0" 200`)
	})
	t.Run("upgrade with a body is ignored", func(t *testing.T) {
		head, body := h2cUpgrade(t, h.s.Addr, "POST /proto HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"+
			"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nhi")
		if !strings.HasPrefix(head, "HTTP/1.1 200 ") || body != "HTTP/1.1 http -" {
			t.Errorf("got %q then %q, want an HTTP/1.1 200", head, body)
		}
	})
	t.Run("without --h2c", func(t *testing.T) {
		plain := startServer(t, "h2app")
		if _, err := h2cClient().Get(plain.URL + "/proto"); err == nil {
			t.Error("prior-knowledge HTTP/2 was answered without --h2c")
		}
		head, body := h2cUpgrade(t, plain.Addr, "GET /proto HTTP/1.1\r\nHost: x\r\n"+
			"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
		if !strings.HasPrefix(head, "HTTP/1.1 200 ") || body != "HTTP/1.1 http -" {
			t.Errorf("got %q then %q, want the upgrade ignored", head, body)
		}
	})
}

// h2cUpgrade sends request on a new connection to addr. If the answer is
// 101, it speaks HTTP/2 (preface, empty SETTINGS) and returns the 101's
// status line and stream 1's body; otherwise the HTTP/1.1 response's
// status line and body.
func h2cUpgrade(t testing.TB, addr, request string) (string, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the answer to the upgrade: %v", err)
	}
	status := resp.Proto + " " + resp.Status
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(resp.Body)
		return status, string(b)
	}
	// The client preface, and an empty SETTINGS frame.
	if _, err := io.WriteString(conn, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"); err != nil {
		t.Fatal(err)
	}
	var body []byte
	sawHeaders := false
	for {
		var head [9]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			t.Fatalf("reading HTTP/2 frames: %v (body so far %q)", err, body)
		}
		length := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
		typ, flags, stream := head[3], head[4], binary.BigEndian.Uint32(head[5:])&0x7fffffff
		payload := make([]byte, length)
		if _, err := io.ReadFull(br, payload); err != nil {
			t.Fatal(err)
		}
		switch {
		case typ == 0x4 && flags&0x1 == 0: // the server's SETTINGS: ack it
			_, _ = conn.Write([]byte{0, 0, 0, 0x4, 0x1, 0, 0, 0, 0})
		case typ == 0x1 && stream == 1:
			sawHeaders = true
		case typ == 0x0 && stream == 1:
			body = append(body, payload...)
			if flags&0x1 != 0 {
				if !sawHeaders {
					t.Error("stream 1 had no HEADERS frame before its data")
				}
				return status, string(body)
			}
		case typ == 0x3 || typ == 0x7: // RST_STREAM, GOAWAY
			t.Fatalf("frame type %d from the server: % x", typ, payload)
		}
	}
}

// TestCurlHTTP2 checks what curl does: HTTP/2 by ALPN over TLS, by
// upgrade and with prior knowledge over cleartext.
func TestCurlHTTP2(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	h := startH2(t, "h2app")
	ca := fileIn(t, t.TempDir(), "ca.pem", h.cert.CertPEM)
	for _, tc := range []struct {
		name string
		args []string
		want string // body, newline, curl's %{http_version}
	}{
		{"--http2 over TLS", []string{"--http2", "--cacert", ca, h.s.TLSURL + "/proto"}, "HTTP/2.0 https on\n2"},
		{"--http2 cleartext (Upgrade: h2c)", []string{"--http2", h.s.URL + "/proto"}, "HTTP/2.0 http -\n2"},
		{"--http2-prior-knowledge", []string{"--http2-prior-knowledge", h.s.URL + "/proto"}, "HTTP/2.0 http -\n2"},
		{"--http1.1 over TLS", []string{"--http1.1", "--cacert", ca, h.s.TLSURL + "/proto"}, "HTTP/1.1 https on\n1.1"},
		{"--http2 streaming", []string{"--http2", "--cacert", ca, h.s.TLSURL + "/stream?n=4"}, "chunk 0\nchunk 1\nchunk 2\nchunk 3\n\n2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-sS", "--max-time", "10", "-w", "\n%{http_version}"}, tc.args...)
			out, err := exec.Command("curl", args...).CombinedOutput()
			if err != nil || string(out) != tc.want {
				t.Errorf("curl %s: %v\n%s\nwant:\n%s", strings.Join(args, " "), err, out, tc.want)
			}
		})
	}
}

// TestH2Parking parks requests over HTTP/2, where the connection cannot be
// taken out of the server: each waits in its handler, on a connection
// that goes on serving its other streams.
func TestH2Parking(t *testing.T) {
	t.Parallel()
	h := startH2(t, "h2app")
	for _, k := range h.kinds {
		t.Run(k.name, func(t *testing.T) {
			ch := func(name string) string { return k.name + "-" + name }
			t.Run("retry", func(t *testing.T) {
				res := parkAsync(k.client, "POST", k.base+"/park?ch="+ch("retry"), "xyz")
				waitNotified(t, h.s.URL, "ch="+ch("retry")+"&action=retry&arg=hello")
				r := <-res
				wantStatus(t, r, 200)
				want := "retried arg=hello body=xyz proto=HTTP/2.0 scheme=" + k.scheme
				if string(r.Body) != want {
					t.Errorf("retry answered %q, want %q", r.Body, want)
				}
			})
			t.Run("timeouts", func(t *testing.T) {
				r204 := parkAsync(k.client, "GET", k.base+"/park?ch="+ch("t")+"&timeout=0.3", "")
				r504 := parkAsync(k.client, "GET", k.base+"/park?ch="+ch("t")+"&timeout=0.3+http-504", "")
				rRetry := parkAsync(k.client, "GET", k.base+"/park?ch="+ch("t")+"&timeout=0.3+retry", "")
				wantStatus(t, <-r204, 204)
				wantStatus(t, <-r504, 504)
				if r := <-rRetry; string(r.Body) != "retried arg= body= proto=HTTP/2.0 scheme="+k.scheme {
					t.Errorf("retry after timeout answered %q", r.Body)
				}
			})
			t.Run("many on one connection", func(t *testing.T) {
				var results []chan *response
				for range 20 {
					results = append(results, parkAsync(k.client, "GET", k.base+"/park?ch="+ch("many"), ""))
				}
				waitFor(t, waitTimeout, "20 parked requests", func() bool {
					// The connection's other streams are served meanwhile.
					getOver(t, k.client, k.base+"/proto", "HTTP/2.0")
					return parkedCalls(t, h.s, ch("many")) == 20
				})
				woken := 0
				waitFor(t, waitTimeout, "20 wake-ups", func() bool {
					woken += atoiOr(get(t, h.s.URL+"/notify?ch="+ch("many")+"&action=http-504").String())
					return woken == 20
				})
				for _, res := range results {
					wantStatus(t, <-res, 504)
				}
			})
			t.Run("disconnect", func(t *testing.T) {
				res := parkAsync(k.client, "GET", k.base+"/park?ch="+ch("drop"), "")
				waitNotified(t, h.s.URL, "ch="+ch("drop")+"&action=disconnect")
				if r := <-res; r.Status != 0 || !strings.Contains(r.StatusLine, "INTERNAL_ERROR") {
					t.Errorf("disconnect gave %q, want the stream reset", r.StatusLine)
				}
				h.s.WaitStdout(t, `"GET /park?ch=`+ch("drop")+` HTTP/2.0" 444`)
			})
			t.Run("client resets the stream", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "GET", k.base+"/park?ch="+ch("gone"), nil)
				errc := make(chan error, 1)
				go func() {
					resp, err := k.client.Do(req)
					if err == nil {
						resp.Body.Close()
					}
					errc <- err
				}()
				waitFor(t, waitTimeout, "the request to park", func() bool { return parkedCalls(t, h.s, ch("gone")) == 1 })
				cancel()
				<-errc
				// Noticed at once: logged, and out of the lot.
				h.s.WaitStdout(t, `"GET /park?ch=`+ch("gone")+` HTTP/2.0" 499`)
				if n := get(t, h.s.URL+"/notify?ch="+ch("gone")+"&action=http-204").String(); n != "0" {
					t.Errorf("notify woke %s after the client left", n)
				}
			})
		})
	}
}

// parkedCalls is how many requests h2app has parked on channel so far
// (the front parks each a moment after).
func parkedCalls(t testing.TB, s *tlsServer, channel string) int {
	t.Helper()
	return atoiOr(get(t, s.URL+"/parked?ch="+channel).String())
}

// parkAsync sends a request that parks, and returns where its response
// (or, in StatusLine, its error) arrives.
func parkAsync(c *http.Client, method, url, body string) chan *response {
	res := make(chan *response, 1)
	go func() {
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		if body == "" {
			req.Body = nil
		}
		resp, err := c.Do(req)
		if err != nil {
			res <- &response{StatusLine: err.Error()}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			res <- &response{StatusLine: err.Error()}
			return
		}
		res <- &response{Status: resp.StatusCode, StatusLine: resp.Status, Header: resp.Header, Body: b, Proto: resp.Proto}
	}()
	return res
}

// TestH2Shutdown stops the server while an HTTP/2 connection has a request
// parked and a response streaming: the parked one gets 204, the streamed
// one ends whole, and the server exits cleanly.
func TestH2Shutdown(t *testing.T) {
	t.Parallel()
	h := startH2(t, "h2app")
	c := h.kinds[0].client
	parked := parkAsync(c, "GET", h.s.TLSURL+"/park?ch=stop", "")
	waitFor(t, waitTimeout, "the request to park", func() bool { return parkedCalls(t, h.s, "stop") == 1 })
	resp, err := c.Get(h.s.TLSURL + "/stream?n=6&delay=0.2")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	h.s.Signal(t, syscall.SIGTERM)
	if r := <-parked; r.Status != 204 {
		t.Errorf("parked request got %q at shutdown, want 204", r.StatusLine)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || strings.Count(string(body), "chunk ") != 6 {
		t.Errorf("streamed response across the shutdown: %q, %v", body, err)
	}
	if code := h.s.WaitExit(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
}
