package accesslog

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestEscaping(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/plain?q=1", "/plain?q=1"},
		{`/a"b`, `/a\x22b`},
		{"/a\nb\rc", `/a\x0ab\x0dc`},
		{`back\slash`, `back\x5cslash`},
		{"/café", "/café"},
		{"\xff\xfe", `\xff\xfe`},
		{"\x00", `\x00`},
	}
	for _, tt := range tests {
		if got := string(appendEscaped(nil, tt.in)); got != tt.want {
			t.Errorf("appendEscaped(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLineFormat(t *testing.T) {
	var out bytes.Buffer
	l := New(&out)
	when := time.Date(2026, 11, 22, 2, 59, 24, 0, time.UTC)
	l.Log(&Entry{
		Client: "127.0.0.1", Method: "GET", URI: "/x?y=1", Proto: "HTTP/1.1",
		Status: 200, Bytes: 12, UserAgent: "curl/7.88.1\n\"forged\"",
		Duration: 570 * time.Microsecond, Worker: 15,
	}, when)
	l.Log(&Entry{Client: "::1", Method: "POST", URI: "/", Proto: "HTTP/1.0", Status: 413, Worker: -1}, when)
	l.Close()
	want := `127.0.0.1 - - [22/Nov/2026:02:59:24 +0000] "GET /x?y=1 HTTP/1.1" 200 12 "-" "curl/7.88.1\x0a\x22forged\x22" 0.570ms w15` + "\n" +
		`::1 - - [22/Nov/2026:02:59:24 +0000] "POST / HTTP/1.0" 413 0 "-" "-" 0.000ms w-` + "\n"
	if got := out.String(); got != want {
		t.Errorf("log lines:\n%s\nwant:\n%s", got, want)
	}
	if strings.Count(out.String(), "\n") != 2 {
		t.Error("a header value split a line")
	}
}

// recordWrites keeps each Write as it came.
type recordWrites struct{ writes []string }

func (r *recordWrites) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

func TestWritesAreWholeLinesWithinPipeBuf(t *testing.T) {
	line := strings.Repeat("x", 99) + "\n"
	long := strings.Repeat("y", 5000) + "\n"
	var w recordWrites
	writeLines(&w, []byte(strings.Repeat(line, 100)+long+line))
	total := 0
	for _, s := range w.writes {
		total += len(s)
		if !strings.HasSuffix(s, "\n") {
			t.Errorf("a write ends mid-line: ...%q", s[max(0, len(s)-10):])
		}
		if len(s) > atomicWrite && s != long {
			t.Errorf("a write of %d bytes holds more than one line and exceeds %d", len(s), atomicWrite)
		}
	}
	if total != 100*len(line)+len(long)+len(line) {
		t.Errorf("wrote %d bytes in all", total)
	}
}
