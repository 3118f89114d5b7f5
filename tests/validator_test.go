package tests

import (
	"net/http"
	"strings"
	"testing"
)

// TestValidator runs requests through an app wrapped in
// wsgiref.validate.validator: any WSGI violation by the server would show
// as a 500 with an AssertionError, or a warning on stderr.
func TestValidator(t *testing.T) {
	t.Parallel()
	s := startServer(t, "validapp")
	for _, tc := range []struct {
		method, body, want string
	}{
		{"GET", "", "valid hello"},
		{"POST", "form=data&x=1", "posted form=data&x=1"},
		{"HEAD", "", ""},
		{"GET", "", "valid hello"},
	} {
		var body *strings.Reader
		if tc.body != "" {
			body = strings.NewReader(tc.body)
		}
		var req *http.Request
		if body != nil {
			req, _ = http.NewRequest(tc.method, s.URL+"/v?q=1", body)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		} else {
			req, _ = http.NewRequest(tc.method, s.URL+"/v?q=1", nil)
		}
		r := do(t, req)
		wantStatus(t, r, 200)
		if r.String() != tc.want {
			t.Errorf("%s body = %q, want %q", tc.method, r.Body, tc.want)
		}
	}
	// One more request, so the previous responses have surely been closed
	// and released (the validator complains when that happens unclosed).
	healthy(t, s, "/")
	for _, bad := range []string{"Traceback", "AssertionError", "Warning", "garbage collected", "Error"} {
		if strings.Contains(s.Stderr(), bad) {
			t.Errorf("stderr contains %q:\n%s", bad, tail(s.Stderr()))
		}
	}
}
