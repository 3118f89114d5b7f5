package tests

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestResponse(t *testing.T) {
	t.Parallel()
	// Several workers: /stream blocks one while /release runs on another.
	s := startServer(t, "respapp", "--workers", "4")

	t.Run("bodies", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ path, want string }{
			{"/list", "hello from a list"},
			{"/single", "single chunk"},
			{"/gen", "gen-one gen-two gen-three"},
			{"/content-length", "abcdef"},
			{"/write", "first second third"}, // write() output, then the iterable
		} {
			r := get(t, s.URL+tc.path)
			wantStatus(t, r, 200)
			if r.String() != tc.want {
				t.Errorf("GET %s body = %q, want %q", tc.path, r.Body, tc.want)
			}
			if ct := r.Header.Get("Content-Type"); ct != "text/plain" {
				t.Errorf("GET %s Content-Type = %q", tc.path, ct)
			}
		}
	})

	// What goes on the wire, seen over a raw keep-alive connection.
	t.Run("framing", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, s)
		for _, tc := range []struct {
			path          string
			contentLength string // "" = none
			chunked       bool
			body          string
		}{
			{"/single", "12", false, "single chunk"},
			{"/content-length", "6", false, "abcdef"},
			{"/gen", "", true, "gen-one gen-two gen-three"},
			{"/list", "", false, "hello from a list"}, // any valid framing
		} {
			rc.send("GET " + tc.path + " HTTP/1.1\r\nHost: " + s.Addr + "\r\n\r\n")
			r := rc.mustResponse("GET")
			wantStatus(t, r, 200)
			if r.String() != tc.body {
				t.Errorf("%s: body = %q, want %q", tc.path, r.Body, tc.body)
			}
			if tc.path == "/list" {
				continue
			}
			if got := r.Header.Get("Content-Length"); got != tc.contentLength {
				t.Errorf("%s: Content-Length = %q, want %q", tc.path, got, tc.contentLength)
			}
			if isChunked := len(r.TE) > 0 && r.TE[0] == "chunked"; isChunked != tc.chunked {
				t.Errorf("%s: Transfer-Encoding = %q, want chunked=%v", tc.path, r.TE, tc.chunked)
			}
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{"/single", "/gen"} {
			getResp := parseRaw(t, rawExchange(t, s, "GET "+path+" HTTP/1.1\r\nHost: "+s.Addr+"\r\nConnection: close\r\n\r\n"), "GET")
			headResp := rawHead(t, s, path)
			wantStatus(t, headResp, 200)
			compare := []string{"Content-Type", "Content-Length"}
			if path == "/gen" {
				// Without running the body, the length is unknown: only
				// compare what the app itself set.
				compare = compare[:1]
			}
			for _, h := range compare {
				if g, h2 := getResp.Header.Get(h), headResp.Header.Get(h); g != h2 {
					t.Errorf("HEAD %s: %s = %q, GET has %q", path, h, h2, g)
				}
			}
		}
	})

	// Bodies larger than net/http's 4 KiB buffer go out with their headers
	// in one writev (wsgi.DirectConn): pipelined on one connection, every
	// response, large, small and HEAD, arrives whole and in order.
	t.Run("whole bodies, pipelined", func(t *testing.T) {
		t.Parallel()
		chunks := func(n, k int) []byte {
			var b []byte
			for j := range k {
				for i := range n {
					b = append(b, byte((i+j)%251))
				}
			}
			return b
		}
		requests := []struct {
			method, path string
			body         []byte
		}{
			{"GET", "/chunks?n=100000&k=1", chunks(100000, 1)},
			{"GET", "/single", []byte("single chunk")},
			{"HEAD", "/chunks?n=5000&k=1", nil},
			{"GET", "/chunks?n=4000&k=1", chunks(4000, 1)}, // about net/http's buffer
			{"GET", "/chunks?n=3000&k=5", chunks(3000, 5)},
			{"GET", "/chunks?n=70000&k=2", chunks(70000, 2)},
		}
		rc := dialRaw(t, s)
		var all strings.Builder
		for _, req := range requests {
			all.WriteString(req.method + " " + req.path + " HTTP/1.1\r\nHost: " + s.Addr + "\r\n\r\n")
		}
		rc.send(all.String())
		for _, req := range requests {
			r := rc.mustResponse(req.method)
			wantStatus(t, r, 200)
			if !bytes.Equal(r.Body, req.body) {
				t.Errorf("%s %s: body of %d bytes, want %d (or other bytes)", req.method, req.path, len(r.Body), len(req.body))
			}
			if req.method == "GET" && r.Header.Get("Content-Length") != strconv.Itoa(len(req.body)) {
				t.Errorf("%s %s: Content-Length = %q, want %d", req.method, req.path, r.Header.Get("Content-Length"), len(req.body))
			}
		}
	})

	t.Run("keep-alive", func(t *testing.T) {
		t.Parallel()
		var dials atomic.Int32
		c := &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					dials.Add(1)
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				},
			},
		}
		defer c.CloseIdleConnections()
		paths := []string{"/single", "/gen", "/list", "/write", "/content-length"}
		for i := 0; i < 10; i++ {
			resp, err := c.Get(s.URL + paths[i%len(paths)])
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("request %d: status %d, %v", i, resp.StatusCode, err)
			}
		}
		if n := dials.Load(); n != 1 {
			t.Errorf("10 sequential requests needed %d connections, want 1", n)
		}
	})

	t.Run("generator is streamed", func(t *testing.T) {
		t.Parallel()
		token := "stream-1"
		resp, err := client.Get(s.URL + "/stream?token=" + token)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		first := make(chan string, 1)
		go func() { line, _ := br.ReadString('\n'); first <- line }()
		select {
		case line := <-first:
			if line != "first\n" {
				t.Fatalf("first chunk = %q", line)
			}
		case <-time.After(waitTimeout):
			t.Fatal("first chunk not received while the generator waits: response is buffered, not streamed")
		}
		// Only now let the generator produce its second chunk.
		r := get(t, s.URL+"/release?token="+token)
		wantStatus(t, r, 200)
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("reading the rest: %v", err)
		}
		if string(rest) != "released\n" {
			t.Fatalf("rest of stream = %q, want %q", rest, "released\n")
		}
	})

	closeCount := func(t *testing.T, token string) string {
		return get(t, s.URL+"/closecount?token="+token).String()
	}
	// waitCloseCount polls (bounded) until close() has run at least once.
	waitCloseCount := func(t *testing.T, token string) string {
		deadline := time.Now().Add(waitTimeout)
		for {
			n := closeCount(t, token)
			if n != "0" || time.Now().After(deadline) {
				return n
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("close after normal end", func(t *testing.T) {
		t.Parallel()
		r := get(t, s.URL+"/closing?mode=normal&token=normal")
		wantStatus(t, r, 200)
		if r.String() != "one two three" {
			t.Errorf("body = %q", r.Body)
		}
		if n := waitCloseCount(t, "normal"); n != "1" {
			t.Errorf("close() ran %s times, want 1", n)
		}
	})

	t.Run("close after exception in iteration", func(t *testing.T) {
		t.Parallel()
		raw := rawExchange(t, s, "GET /closing?mode=raise&token=raise HTTP/1.1\r\nHost: "+s.Addr+"\r\nConnection: close\r\n\r\n")
		// Headers (and "partial ") may have gone out; the response must not
		// look complete: either a 500 or a truncated body.
		if resp, err := (&rawConn{t: t, br: bufio.NewReader(strings.NewReader(string(raw)))}).readResponse("GET"); err == nil && resp.Status == 200 {
			t.Errorf("response looks complete and successful despite the exception: %q", raw)
		}
		if n := waitCloseCount(t, "raise"); n != "1" {
			t.Errorf("close() ran %s times, want 1", n)
		}
		s.WaitStderr(t, "respapp-iteration-failed")
		healthy(t, s, "/single")
	})

	t.Run("close after client disconnect", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, s)
		rc.send("GET /closing?mode=endless&token=gone HTTP/1.1\r\nHost: " + s.Addr + "\r\n\r\n")
		if _, err := io.ReadFull(rc.br, make([]byte, 200000)); err != nil {
			t.Fatalf("reading the start of the endless body: %v", err)
		}
		rc.c.Close()
		if n := waitCloseCount(t, "gone"); n != "1" {
			t.Fatalf("close() ran %s times after the client left, want 1", n)
		}
		healthy(t, s, "/single")
		if n := closeCount(t, "gone"); n != "1" {
			t.Errorf("close() ran %s times, want exactly 1", n)
		}
	})

	t.Run("file_wrapper with a file", func(t *testing.T) {
		t.Parallel()
		data := pseudoRandom(3<<20+12345, 42)
		path := filepath.Join(t.TempDir(), "payload.bin")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r := get(t, s.URL+"/filewrapper?path="+url.QueryEscape(path))
		wantStatus(t, r, 200)
		if len(r.Body) != len(data) || sha256hex(r.Body) != sha256hex(data) {
			t.Errorf("file_wrapper served %d bytes (sha256 %s), want %d bytes (%s)", len(r.Body), sha256hex(r.Body), len(data), sha256hex(data))
		}
	})

	t.Run("file_wrapper with BytesIO", func(t *testing.T) {
		t.Parallel()
		r := get(t, s.URL+"/bytesio?n=100000")
		wantStatus(t, r, 200)
		if len(r.Body) != 100000 || sha256hex(r.Body) != r.Header.Get("X-Sha256") {
			t.Errorf("BytesIO via file_wrapper: got %d bytes, sha256 %s, want 100000 bytes, %s", len(r.Body), sha256hex(r.Body), r.Header.Get("X-Sha256"))
		}
	})

	t.Run("exc_info before headers are sent", func(t *testing.T) {
		t.Parallel()
		r := get(t, s.URL+"/excinfo-before")
		// The app's second start_response ("500 Oops") replaced the first.
		if r.Status != 500 {
			t.Errorf("status = %q, want 500", r.StatusLine)
		}
		if r.String() != "oops body" {
			t.Errorf("body = %q, want %q", r.Body, "oops body")
		}
	})

	t.Run("exc_info after headers are sent", func(t *testing.T) {
		t.Parallel()
		raw := rawExchange(t, s, "GET /excinfo-after?token=after HTTP/1.1\r\nHost: "+s.Addr+"\r\nConnection: close\r\n\r\n")
		if st := statusOf(raw); st != "200" {
			t.Errorf("status = %s, want the 200 that was already sent", st)
		}
		if strings.Contains(string(raw), "must never be sent") {
			t.Errorf("the app's return value was sent after start_response re-raised: %q", raw)
		}
		if resp, err := (&rawConn{t: t, br: bufio.NewReader(strings.NewReader(string(raw)))}).readResponse("GET"); err == nil {
			t.Errorf("response is complete (body %q); want the connection aborted or the body truncated", resp.Body)
		}
		if got := get(t, s.URL+"/reraised?token=after").String(); got != "true" {
			t.Errorf("start_response(..., exc_info) after headers were sent did not re-raise the exception")
		}
		healthy(t, s, "/single")
	})

	t.Run("bad header values are refused", func(t *testing.T) {
		t.Parallel()
		for _, kind := range []string{"crlf", "latin1"} {
			r := get(t, s.URL+"/badheader?catch=1&kind="+kind)
			wantStatus(t, r, 200)
			if !strings.HasPrefix(r.String(), "refused ") {
				t.Errorf("%s: start_response accepted the header (body %q), want it to raise", kind, r.Body)
			}
			r = get(t, s.URL+"/badheader?catch=0&kind="+kind)
			wantStatus(t, r, 500)
			if r.Header.Get("X-Injected") != "" || r.Header.Get("X-Bad") != "" {
				t.Errorf("%s: bad header reached the client: %v", kind, r.Header)
			}
		}
		healthy(t, s, "/single")
	})
}
