package tests

import (
	"regexp"
	"strings"
	"testing"
)

// TestAccessLog: one stdout line per request with client address, method,
// path, status and the number of body bytes.
func TestAccessLog(t *testing.T) {
	t.Parallel()
	s := startServer(t, "hello")
	for _, tc := range []struct {
		method, path, status, bytes string
	}{
		{"GET", "/logged/first-path?n=1234", "200", "1234"},
		{"POST", "/logged/second-path?n=77", "200", "77"},
		{"GET", "/logged/third-path", "200", "12"},
	} {
		var r *response
		if tc.method == "POST" {
			r = post(t, s.URL+tc.path, "text/plain", []byte("some body"))
		} else {
			r = get(t, s.URL+tc.path)
		}
		wantStatus(t, r, 200)
		pathOnly, _, _ := strings.Cut(tc.path, "?")
		s.WaitStdout(t, pathOnly)
		var line string
		for _, l := range strings.Split(s.Stdout(), "\n") {
			if strings.Contains(l, pathOnly) {
				if line != "" {
					t.Errorf("more than one access log line for %s:\n%s\n%s", pathOnly, line, l)
				}
				line = l
			}
		}
		for _, want := range []string{"127.0.0.1", tc.method, pathOnly} {
			if !strings.Contains(line, want) {
				t.Errorf("access log line lacks %q: %q", want, line)
			}
		}
		for _, num := range []string{tc.status, tc.bytes} {
			if !regexp.MustCompile(`(^|\D)` + num + `(\D|$)`).MatchString(line) {
				t.Errorf("access log line lacks %s: %q", num, line)
			}
		}
	}
}
