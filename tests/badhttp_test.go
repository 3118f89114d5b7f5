package tests

import (
	"bytes"
	"strings"
	"testing"
)

// TestBadHTTP sends malformed requests over raw sockets: each gets the
// right 4xx and the server keeps serving.
func TestBadHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t, "countapp")
	host := "Host: " + s.Addr + "\r\n"
	for _, tc := range []struct {
		name, request, status string
	}{
		{"garbage request line", "THIS IS NOT HTTP\r\n\r\n", "400"},
		{"oversized headers", "GET / HTTP/1.1\r\n" + host + "X-Big: " + strings.Repeat("a", 200<<10) + "\r\n\r\n", "431"},
		{"bad chunk size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n", "400"},
		{"chunk longer than its size", "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n3\r\nabcdef\r\n0\r\n\r\n", "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := dialRaw(t, s)
			// Write in the background: the server may answer (and close)
			// before it has read everything.
			go func() { _, _ = rc.c.Write([]byte(tc.request)) }()
			raw := rc.statusLine()
			if got := statusOf(raw); got != tc.status {
				t.Errorf("status = %s, want %s; response: %.300q", got, tc.status, raw)
			}
			healthy(t, s, "/")
		})
	}
}

// TestMaxBodySize: bodies over --max-body-size get 413 without the app
// running.
func TestMaxBodySize(t *testing.T) {
	t.Parallel()
	s := startServer(t, "countapp", "--max-body-size", "1000")

	t.Run("content-length over the limit", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, s)
		go func() {
			_, _ = rc.c.Write([]byte("POST /?token=cl HTTP/1.1\r\nHost: " + s.Addr + "\r\nContent-Length: 5000\r\n\r\n" + strings.Repeat("x", 5000)))
		}()
		raw := rc.statusLine()
		if got := statusOf(raw); got != "413" {
			t.Errorf("status = %s, want 413; response: %.300q", got, raw)
		}
		if n := get(t, s.URL+"/count?token=cl").String(); n != "0" {
			t.Errorf("app was called %s times for the oversized body, want 0", n)
		}
		healthy(t, s, "/")
	})

	t.Run("chunked over the limit", func(t *testing.T) {
		t.Parallel()
		var body bytes.Buffer
		for i := 0; i < 3; i++ {
			body.WriteString("258\r\n" + strings.Repeat("y", 600) + "\r\n") // 0x258 = 600
		}
		body.WriteString("0\r\n\r\n")
		rc := dialRaw(t, s)
		go func() {
			_, _ = rc.c.Write([]byte("POST /?token=chunked HTTP/1.1\r\nHost: " + s.Addr + "\r\nTransfer-Encoding: chunked\r\n\r\n" + body.String()))
		}()
		raw := rc.statusLine()
		if got := statusOf(raw); got != "413" {
			t.Errorf("status = %s, want 413; response: %.300q", got, raw)
		}
		healthy(t, s, "/")
	})

	t.Run("under the limit", func(t *testing.T) {
		t.Parallel()
		r := post(t, s.URL+"/?token=small", "text/plain", bytes.Repeat([]byte("z"), 999))
		wantStatus(t, r, 200)
		if r.String() != "got 999 bytes" {
			t.Errorf("body = %q", r.Body)
		}
		r = postChunked(t, s.URL+"/?token=small", "text/plain", bytes.Repeat([]byte("z"), 900))
		wantStatus(t, r, 200)
		if r.String() != "got 900 bytes" {
			t.Errorf("chunked body = %q", r.Body)
		}
	})
}
