package tests

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// inputAnswer is inputapp's JSON answer.
type inputAnswer struct {
	ContentLength *string  `json:"content_length"`
	Chunks        []string `json:"chunks"`
	First         []string `json:"first"`
	Types         []string `json:"types"`
	EOF           string   `json:"eof"`
	SHA256        string   `json:"sha256"`
	Length        int      `json:"length"`
}

func decodeInput(t testing.TB, r *response) inputAnswer {
	t.Helper()
	wantStatus(t, r, 200)
	var a inputAnswer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		t.Fatalf("inputapp answer is not JSON: %v\n%.500q", err, r.Body)
	}
	if a.EOF != "b''" {
		t.Errorf("read at end of input returned %s, want b''", a.EOF)
	}
	if len(a.Chunks) > 0 && !reflect.DeepEqual(a.Types, []string{"bytes"}) {
		t.Errorf("wsgi.input returned types %v, want only bytes", a.Types)
	}
	return a
}

func TestInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, "inputapp")

	const lines = "hello world\nsecond line\n\nlast without newline"
	for _, tc := range []struct {
		name, path, body string
		want             []string
	}{
		{"read", "/read", lines, []string{lines}},
		{"read(n)", "/readn?n=5", "0123456789abcdef", []string{"01234", "56789", "abcde", "f"}},
		{"readline", "/readline", lines, []string{"hello world\n", "second line\n", "\n", "last without newline"}},
		{"readline(size)", "/readline?size=5", "hello world\nab\n", []string{"hello", " worl", "d\n", "ab\n"}},
		{"iteration", "/iter", lines, []string{"hello world\n", "second line\n", "\n", "last without newline"}},
		{"empty body read", "/read", "", []string{""}},
	} {
		for _, chunked := range []bool{false, true} {
			name := tc.name + map[bool]string{false: " content-length", true: " chunked"}[chunked]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				var r *response
				if chunked {
					r = postChunked(t, s.URL+tc.path, "text/plain", []byte(tc.body))
				} else {
					r = post(t, s.URL+tc.path, "text/plain", []byte(tc.body))
				}
				a := decodeInput(t, r)
				if !reflect.DeepEqual(a.Chunks, tc.want) {
					t.Errorf("chunks = %q, want %q", a.Chunks, tc.want)
				}
			})
		}
	}

	t.Run("readlines(hint)", func(t *testing.T) {
		t.Parallel()
		all := []string{"a\n", "bb\n", "ccc\n", "dddd\n"}
		a := decodeInput(t, post(t, s.URL+"/readlines?hint=4", "text/plain", []byte(strings.Join(all, ""))))
		// PEP 3333 lets the server ignore the hint, so the first call
		// may return any non-empty prefix of the lines, the second the rest.
		if !reflect.DeepEqual(a.Chunks, all) {
			t.Errorf("readlines(4) + readlines() = %q, want %q", a.Chunks, all)
		}
		if len(a.First) == 0 || !reflect.DeepEqual(a.First, all[:len(a.First)]) {
			t.Errorf("readlines(4) = %q, want a non-empty prefix of %q", a.First, all)
		}
	})

	t.Run("GET has empty input", func(t *testing.T) {
		t.Parallel()
		a := decodeInput(t, get(t, s.URL+"/read"))
		if !reflect.DeepEqual(a.Chunks, []string{""}) {
			t.Errorf("read() on a GET = %q, want b''", a.Chunks)
		}
	})

	t.Run("raw chunked body with extensions and trailers", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, s)
		rc.send("POST /read HTTP/1.1\r\nHost: " + s.Addr + "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: yes\r\n\r\n")
		a := decodeInput(t, rc.mustResponse("POST"))
		if want := []string{"Wikipedia in\r\n\r\nchunks."}; !reflect.DeepEqual(a.Chunks, want) {
			t.Errorf("chunked body = %q, want %q", a.Chunks, want)
		}
		if a.ContentLength == nil || *a.ContentLength != "23" {
			t.Errorf("CONTENT_LENGTH for a buffered chunked body = %v, want \"23\"", deref(a.ContentLength))
		}
	})

	// Bodies bigger than the 1 MiB buffering threshold, hashed by the app.
	big := pseudoRandom(5<<20, 7)
	for _, chunked := range []bool{false, true} {
		name := map[bool]string{false: "5 MiB content-length", true: "5 MiB chunked"}[chunked]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var r *response
			if chunked {
				r = postChunked(t, s.URL+"/hash", "application/octet-stream", big)
			} else {
				r = post(t, s.URL+"/hash", "application/octet-stream", big)
			}
			a := decodeInput(t, r)
			if a.Length != len(big) || a.SHA256 != sha256hex(big) {
				t.Errorf("app read %d bytes with sha256 %s, want %d bytes with %s", a.Length, a.SHA256, len(big), sha256hex(big))
			}
			if !chunked && (a.ContentLength == nil || *a.ContentLength != fmt.Sprint(len(big))) {
				t.Errorf("CONTENT_LENGTH = %v, want %d", deref(a.ContentLength), len(big))
			}
		})
	}

	t.Run("Expect 100-continue", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, s)
		rc.send("POST /read HTTP/1.1\r\nHost: " + s.Addr + "\r\nContent-Length: 11\r\nExpect: 100-continue\r\n" +
			"Content-Type: text/plain\r\nConnection: close\r\n\r\n")
		// Send nothing more until the interim response arrives.
		_ = rc.c.SetReadDeadline(time.Now().Add(waitTimeout))
		line, err := rc.br.ReadString('\n')
		if err != nil {
			t.Fatalf("no interim response before the body was sent: %v (got %q)", err, line)
		}
		if strings.TrimRight(line, "\r\n") != "HTTP/1.1 100 Continue" {
			t.Fatalf("first response line = %q, want HTTP/1.1 100 Continue", line)
		}
		if blank, err := rc.br.ReadString('\n'); err != nil || blank != "\r\n" {
			t.Fatalf("100 Continue not followed by an empty line: %q %v", blank, err)
		}
		_ = rc.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		rc.send("hello there")
		a := decodeInput(t, rc.mustResponse("POST"))
		if !reflect.DeepEqual(a.Chunks, []string{"hello there"}) {
			t.Errorf("body after 100-continue = %q", a.Chunks)
		}
	})
}

func deref(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}
