package tests

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// environ is envapp's answer: key -> [type name, value].
type environ map[string][2]any

func decodeEnviron(t testing.TB, r *response) environ {
	t.Helper()
	wantStatus(t, r, 200)
	var env environ
	if err := json.Unmarshal(r.Body, &env); err != nil {
		t.Fatalf("envapp answer is not JSON: %v\n%.500q", err, r.Body)
	}
	return env
}

// str returns the value of a str key, failing if it is missing or no str.
func (e environ) str(t testing.TB, key string) string {
	t.Helper()
	v, ok := e[key]
	if !ok {
		t.Fatalf("environ lacks %s", key)
	}
	s, isStr := v[1].(string)
	if v[0] != "str" || !isStr {
		t.Fatalf("environ[%s] = %v (%v), want a str", key, v[1], v[0])
	}
	return s
}

// wantStr checks that key is a str equal to want.
func (e environ) wantStr(t testing.TB, key, want string) {
	t.Helper()
	if got := e.str(t, key); got != want {
		t.Errorf("environ[%s] = %q, want %q", key, got, want)
	}
}

func (e environ) wantAbsent(t testing.TB, key string) {
	t.Helper()
	if v, ok := e[key]; ok {
		t.Errorf("environ has %s = %v, want it absent", key, v)
	}
}

// wantValue checks type name and value (bools) or repr (tuples, ...).
func (e environ) wantValue(t testing.TB, key, typ string, value any) {
	t.Helper()
	v, ok := e[key]
	if !ok {
		t.Errorf("environ lacks %s", key)
		return
	}
	if v[0] != typ || v[1] != value {
		t.Errorf("environ[%s] = %v of type %v, want %v of type %s", key, v[1], v[0], value, typ)
	}
}

// latin1Bytes turns a WSGI "bytes-as-str" (every char < 256) back into
// the bytes it carries.
func latin1Bytes(t testing.TB, s string) []byte {
	t.Helper()
	var b []byte
	for _, r := range s {
		if r > 0xff {
			t.Fatalf("%q has a character above U+00FF; WSGI strings must be latin-1", s)
		}
		b = append(b, byte(r))
	}
	return b
}

func TestEnviron(t *testing.T) {
	t.Parallel()
	s := startServer(t, "envapp")

	// rawEnv sends a request over a raw socket (the request line and
	// headers exactly as given) and decodes envapp's answer.
	rawEnv := func(t *testing.T, reqLine string, headers ...string) environ {
		t.Helper()
		req := reqLine + "\r\nHost: " + s.Addr + "\r\n"
		for _, h := range headers {
			req += h + "\r\n"
		}
		req += "Connection: close\r\n\r\n"
		return decodeEnviron(t, parseRaw(t, rawExchange(t, s, req), "GET"))
	}

	t.Run("basics", func(t *testing.T) {
		t.Parallel()
		env := decodeEnviron(t, get(t, s.URL+"/basics"))
		env.wantStr(t, "REQUEST_METHOD", "GET")
		env.wantStr(t, "SCRIPT_NAME", "")
		env.wantStr(t, "PATH_INFO", "/basics")
		env.wantStr(t, "QUERY_STRING", "")
		env.wantAbsent(t, "CONTENT_TYPE")
		env.wantAbsent(t, "CONTENT_LENGTH")
		env.wantStr(t, "SERVER_NAME", "127.0.0.1")
		env.wantStr(t, "SERVER_PORT", s.Port)
		env.wantStr(t, "SERVER_PROTOCOL", "HTTP/1.1")
		env.wantStr(t, "REMOTE_ADDR", "127.0.0.1")
		if p := env.str(t, "REMOTE_PORT"); !regexp.MustCompile(`^[0-9]+$`).MatchString(p) {
			t.Errorf("REMOTE_PORT = %q, want digits", p)
		}
		env.wantStr(t, "HTTP_HOST", s.Addr)
		env.wantValue(t, "wsgi.version", "tuple", "(1, 0)")
		env.wantStr(t, "wsgi.url_scheme", "http")
		env.wantValue(t, "wsgi.multithread", "bool", true)
		env.wantValue(t, "wsgi.multiprocess", "bool", false)
		env.wantValue(t, "wsgi.run_once", "bool", false)
		env.wantValue(t, "wsgi.input_terminated", "bool", true)
		for _, k := range []string{"wsgi.input", "wsgi.errors", "wsgi.file_wrapper"} {
			if _, ok := env[k]; !ok {
				t.Errorf("environ lacks %s", k)
			}
		}
		env.wantValue(t, "_file_wrapper_callable", "bool", true)
		// PEP 3333: every CGI-style key is a native str.
		for k, v := range env {
			if strings.ToUpper(k) == k && !strings.HasPrefix(k, "_") && v[0] != "str" {
				t.Errorf("environ[%s] has type %v, want str", k, v[0])
			}
		}
	})

	t.Run("methods", func(t *testing.T) {
		t.Parallel()
		for _, m := range []string{"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			req, _ := http.NewRequest(m, s.URL+"/m", nil)
			decodeEnviron(t, do(t, req)).wantStr(t, "REQUEST_METHOD", m)
		}
	})

	t.Run("path and query", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			target, path, query string
		}{
			{"/plain", "/plain", ""},
			{"/a%20b", "/a b", ""},
			{"/caf%C3%A9/%E2%82%AC", "/café/€", ""},
			{"/q?a=1&b=%20x+y&c=%C3%A9", "/q", "a=1&b=%20x+y&c=%C3%A9"},
			{"/q?", "/q", ""},
			{"/x?only", "/x", "only"},
		} {
			env := rawEnv(t, "GET "+tc.target+" HTTP/1.1")
			raw := env.str(t, "PATH_INFO")
			if got := string(latin1Bytes(t, raw)); got != tc.path {
				t.Errorf("%s: PATH_INFO.encode('latin-1').decode('utf-8') = %q (PATH_INFO %q), want %q", tc.target, got, raw, tc.path)
			}
			env.wantStr(t, "QUERY_STRING", tc.query)
			env.wantStr(t, "SCRIPT_NAME", "")
		}
	})

	t.Run("content headers", func(t *testing.T) {
		t.Parallel()
		r := post(t, s.URL+"/post", "application/x-wsgo-test", []byte("hello"))
		env := decodeEnviron(t, r)
		env.wantStr(t, "CONTENT_TYPE", "application/x-wsgo-test")
		env.wantStr(t, "CONTENT_LENGTH", "5")
		env.wantAbsent(t, "HTTP_CONTENT_TYPE")
		env.wantAbsent(t, "HTTP_CONTENT_LENGTH")
		env.wantStr(t, "_body", "hello")
	})

	t.Run("small chunked body gets CONTENT_LENGTH", func(t *testing.T) {
		t.Parallel()
		rc := dialRaw(t, s)
		rc.send("POST /chunked HTTP/1.1\r\nHost: " + s.Addr + "\r\nContent-Type: text/plain\r\n" +
			"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
			"6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n")
		env := decodeEnviron(t, rc.mustResponse("POST"))
		env.wantStr(t, "_body", "hello world")
		env.wantStr(t, "CONTENT_LENGTH", "11")
		env.wantAbsent(t, "HTTP_TRANSFER_ENCODING")

		// The same through the Go client with an unknown length.
		env = decodeEnviron(t, postChunked(t, s.URL+"/chunked", "text/plain", []byte("go client chunked")))
		env.wantStr(t, "_body", "go client chunked")
		env.wantStr(t, "CONTENT_LENGTH", fmt.Sprint(len("go client chunked")))
	})

	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		env := rawEnv(t, "GET /h HTTP/1.1",
			"X-Custom-Header: custom value",
			"User-Agent: wsgo-tests/1.0",
			"X-Multi: one",
			"X-Multi: two",
			"Accept: text/html",
			"Accept: application/json",
			"Cookie: a=1",
			"Cookie: b=2",
		)
		env.wantStr(t, "HTTP_X_CUSTOM_HEADER", "custom value")
		env.wantStr(t, "HTTP_USER_AGENT", "wsgo-tests/1.0")
		env.wantStr(t, "HTTP_X_MULTI", "one, two")
		env.wantStr(t, "HTTP_ACCEPT", "text/html, application/json")
		env.wantStr(t, "HTTP_COOKIE", "a=1; b=2")
		env.wantStr(t, "HTTP_HOST", s.Addr)
	})

	t.Run("HTTP/1.0", func(t *testing.T) {
		t.Parallel()
		raw := rawExchange(t, s, "GET /old HTTP/1.0\r\n\r\n")
		env := decodeEnviron(t, parseRaw(t, raw, "GET"))
		env.wantStr(t, "SERVER_PROTOCOL", "HTTP/1.0")
		env.wantStr(t, "PATH_INFO", "/old")
		env.wantStr(t, "SERVER_PORT", s.Port)
		env.wantAbsent(t, "HTTP_HOST")
		if name := env.str(t, "SERVER_NAME"); name == "" {
			t.Errorf("SERVER_NAME is empty without a Host header")
		}
	})

	t.Run("wsgi.errors reaches stderr", func(t *testing.T) {
		t.Parallel()
		get(t, s.URL+"/e?errors=envapp-errors-marker-7f3a")
		s.WaitStderr(t, "wsgi.errors says envapp-errors-marker-7f3a")
	})
}
