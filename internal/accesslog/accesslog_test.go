package accesslog

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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
	l := New(&out, Combined)
	when := time.Date(2026, 11, 22, 2, 59, 24, 0, time.UTC)
	l.Log(&Entry{
		Client: "127.0.0.1", Method: "GET", URI: "/x?y=1", Proto: "HTTP/1.1",
		Status: 200, Bytes: 12, UserAgent: "curl/7.88.1\n\"forged\"",
		Duration: 570 * time.Microsecond, Worker: 15, Priority: -1500,
	}, when)
	l.Log(&Entry{Client: "::1", Method: "POST", URI: "/", Proto: "HTTP/1.0", Status: 413, Worker: -1, Priority: NoPriority}, when)
	l.Close()
	want := `127.0.0.1 - - [22/Nov/2026:02:59:24 +0000] "GET /x?y=1 HTTP/1.1" 200 12 "-" "curl/7.88.1\x0a\x22forged\x22" 0.570ms w15 p-1500` + "\n" +
		`::1 - - [22/Nov/2026:02:59:24 +0000] "POST / HTTP/1.0" 413 0 "-" "-" 0.000ms w- p-` + "\n"
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

// hostile are header values that try to break out of their field.
var hostile = []string{
	`", "status": 999, "x": "`,
	"line\nbreak\r\n{\"status\":1}",
	`back\slash\"quote`,
	"\x00\x01\x1f\x7f tab\t",
	"\xff\xfe invalid \xc3",
	"sep\u2028ara\u2029tors",
	"café ☕ 𝄞",
	"}\n{",
}

// TestJSONFieldsParseBack: every line is one JSON object whose fields are
// exactly what was logged, whatever the header values hold.
func TestJSONFieldsParseBack(t *testing.T) {
	var out bytes.Buffer
	l := New(&out, JSON)
	when := time.Date(2026, 11, 22, 2, 59, 24, 123456789, time.FixedZone("", 3600))
	for _, h := range hostile {
		l.Log(&Entry{Client: "203.0.113.5", Method: "GET", URI: "/p?q=" + h, Proto: "HTTP/1.1", Status: 200, Bytes: 5,
			Referer: h, UserAgent: h, Duration: 1234567 * time.Nanosecond, Worker: 3, Priority: -6500}, when)
	}
	l.Log(&Entry{Client: "::1", Method: "HEAD", URI: "/s", Proto: "HTTP/2.0", Status: 304, Worker: -1, Priority: NoPriority}, when)
	l.Close()
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(hostile)+1 {
		t.Fatalf("%d lines for %d entries:\n%s", len(lines), len(hostile)+1, out.String())
	}
	for i, line := range lines {
		var got map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil || dec.More() {
			t.Fatalf("line %d is not one JSON object (%v): %s", i, err, line)
		}
		if !utf8.ValidString(line) {
			t.Errorf("line %d is not UTF-8", i)
		}
		want := map[string]any{"time": "2026-11-22T02:59:24.123+01:00", "client": "203.0.113.5", "method": "GET",
			"proto": "HTTP/1.1", "status": json.Number("200"), "bytes": json.Number("5"), "duration_ms": json.Number("1.234"),
			"worker": json.Number("3"), "priority": json.Number("-6500")}
		if i < len(hostile) {
			// What encoding/json makes of the value: U+FFFD for each byte
			// that is not UTF-8.
			var h string
			if b, err := json.Marshal(hostile[i]); err != nil || json.Unmarshal(b, &h) != nil {
				t.Fatal(err)
			}
			want["uri"], want["referer"], want["user_agent"] = "/p?q="+h, h, h
		} else {
			want = map[string]any{"time": "2026-11-22T02:59:24.123+01:00", "client": "::1", "method": "HEAD", "uri": "/s",
				"proto": "HTTP/2.0", "status": json.Number("304"), "bytes": json.Number("0"), "referer": "", "user_agent": "",
				"duration_ms": json.Number("0.000"), "worker": nil, "priority": nil}
		}
		if len(got) != len(want) {
			t.Errorf("line %d has fields %v, want %v", i, got, want)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("line %d: %s = %#v, want %#v", i, k, got[k], v)
			}
		}
	}
}

func TestJSONStringEscapes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`a"b\c`, `"a\"b\\c"`},
		{"\n\r\t\x00\x1f\x7f", `"\n\r\t\u0000\u001f` + "\x7f" + `"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"\xff", `"\ufffd"`},
		{"é", `"é"`},
	} {
		if got := string(appendJSONString(nil, tc.in)); got != tc.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestOffLogsNothing(t *testing.T) {
	if l := New(&bytes.Buffer{}, Off); l != nil {
		t.Fatal("New(Off) is not nil")
	}
	var l *Logger
	l.Close()
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	if f, err := ParseFormat("xml"); err == nil {
		t.Fatalf("ParseFormat(xml) = %v", f)
	}
}

// TestReopen: after the file is renamed, Reopen sends later lines to a new
// file of the configured name, and earlier ones stay in the old.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l, err := Open(path, Combined)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	l.Log(&Entry{Client: "1.2.3.4", Method: "GET", URI: "/before", Proto: "HTTP/1.1", Worker: -1, Priority: NoPriority}, now)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Log(&Entry{Client: "1.2.3.4", Method: "GET", URI: "/after", Proto: "HTTP/1.1", Worker: -1, Priority: NoPriority}, now)
	l.Close()
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "/before") || strings.Contains(string(old), "/after") {
		t.Errorf("rotated file: %q", old)
	}
	if !strings.Contains(string(cur), "/after") || strings.Contains(string(cur), "/before") {
		t.Errorf("new file: %q", cur)
	}
}
