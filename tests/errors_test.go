package tests

import (
	"regexp"
	"strings"
	"testing"
)

// TestAppErrors: an app that breaks the WSGI contract gets a 500, the
// reason lands on stderr and the server goes on serving.
func TestAppErrors(t *testing.T) {
	t.Parallel()
	s := startServer(t, "errapp")
	// The cases run one after another on one server so that what each adds
	// to stderr can be told apart.
	for _, tc := range []struct {
		path string
		// stderr must gain these (a traceback for exceptions the app raised)
		want []string
	}{
		{"/raise-before", []string{"Traceback (most recent call last)", "RuntimeError", "errapp-raise-before-marker"}},
		{"/return-str", nil},
		{"/return-int", nil},
		{"/yield-str", nil},
		{"/no-start-response", nil},
		{"/raise-in-iter", []string{"Traceback (most recent call last)", "RuntimeError", "errapp-raise-in-iter-marker"}},
	} {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			before := len(s.Stderr())
			r := get(t, s.URL+tc.path)
			wantStatus(t, r, 500)
			if strings.Contains(r.String(), "not a valid WSGI body") || strings.Contains(r.String(), "text, not bytes") {
				t.Errorf("the invalid body reached the client: %q", r.Body)
			}
			// The error must be reported on stderr, with the markers.
			ok := s.stderr.waitUntil(func(out string) bool {
				added := out[before:]
				// At least the exception line of a Python traceback, and the
				// server's own line that closes the report.
				if !exceptionLineRE.MatchString(added) || !strings.Contains(added, "app failed") {
					return false
				}
				for _, w := range tc.want {
					if !strings.Contains(added, w) {
						return false
					}
				}
				return true
			}, waitTimeout, s.exited)
			if !ok {
				t.Errorf("stderr did not report the error (want %q); it gained:\n%s", tc.want, tail(s.Stderr()[before:]))
			}
			r = get(t, s.URL+"/")
			wantStatus(t, r, 200)
			if r.String() != "healthy" {
				t.Errorf("next request body = %q", r.Body)
			}
		})
	}
	s.Alive(t)
}

// exceptionLineRE matches the last line of a Python traceback, such as
// "TypeError: 'int' object is not iterable".
var exceptionLineRE = regexp.MustCompile(`(?m)^[A-Za-z_][\w.]*(Error|Exception): `)
