package tests

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// newJarClient is a client with its own cookie jar.
func newJarClient(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Jar: jar}
}

func TestDjango(t *testing.T) {
	t.Parallel()
	s := startServer(t, "djangoapp")

	t.Run("template page", func(t *testing.T) {
		t.Parallel()
		r := get(t, s.URL+"/page/")
		wantStatus(t, r, 200)
		for _, want := range []string{"<title>Django page</title>", "<li>ALPHA</li><li>BETA</li><li>GAMMA</li>"} {
			if !strings.Contains(r.String(), want) {
				t.Errorf("page lacks %q:\n%s", want, r.Body)
			}
		}
		// APPEND_SLASH redirect from CommonMiddleware is not installed; an
		// unknown URL is a plain 404.
		wantStatus(t, get(t, s.URL+"/missing/"), 404)
	})

	tokenRE := regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)
	formToken := func(t *testing.T, c *http.Client) string {
		resp, err := c.Get(s.URL + "/form/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body := new(strings.Builder)
		_, _ = io.Copy(body, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET /form/ = %s", resp.Status)
		}
		m := tokenRE.FindStringSubmatch(body.String())
		if m == nil {
			t.Fatalf("no csrf token in the form:\n%s", body)
		}
		return m[1]
	}
	postForm := func(t *testing.T, c *http.Client, form url.Values, chunked bool) *response {
		var r *http.Request
		if chunked {
			r, _ = http.NewRequest("POST", s.URL+"/form/", io.NopCloser(strings.NewReader(form.Encode())))
			r.ContentLength = -1
		} else {
			r, _ = http.NewRequest("POST", s.URL+"/form/", strings.NewReader(form.Encode()))
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body := new(strings.Builder)
		_, _ = io.Copy(body, resp.Body)
		return &response{Status: resp.StatusCode, StatusLine: resp.Status, Header: resp.Header, Body: []byte(body.String())}
	}

	t.Run("form with csrf", func(t *testing.T) {
		t.Parallel()
		c := newJarClient(t)
		token := formToken(t, c)
		u, _ := url.Parse(s.URL)
		if len(c.Jar.Cookies(u)) == 0 {
			t.Fatal("GET /form/ set no csrftoken cookie")
		}
		r := postForm(t, c, url.Values{"csrfmiddlewaretoken": {token}, "name": {"Grace"}}, false)
		wantStatus(t, r, 200)
		if r.String() != "thanks Grace" {
			t.Errorf("body = %q", r.Body)
		}
		// The same with a chunked body (the server buffers it and sets
		// CONTENT_LENGTH, which Django needs to read the form).
		r = postForm(t, c, url.Values{"csrfmiddlewaretoken": {token}, "name": {"Chunked"}}, true)
		wantStatus(t, r, 200)
		if r.String() != "thanks Chunked" {
			t.Errorf("chunked post body = %q", r.Body)
		}
	})

	t.Run("form without csrf token", func(t *testing.T) {
		t.Parallel()
		c := newJarClient(t)
		formToken(t, c) // has the cookie, but does not send the token
		r := postForm(t, c, url.Values{"name": {"Mallory"}}, false)
		wantStatus(t, r, 403)
	})

	t.Run("session counter", func(t *testing.T) {
		t.Parallel()
		c := newJarClient(t)
		for want := 1; want <= 3; want++ {
			resp, err := c.Get(s.URL + "/counter/")
			if err != nil {
				t.Fatal(err)
			}
			var v struct{ N int }
			err = json.NewDecoder(resp.Body).Decode(&v)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /counter/ = %s, %v", resp.Status, err)
			}
			if v.N != want {
				t.Fatalf("session counter = %d, want %d", v.N, want)
			}
		}
		// A client without the session cookie starts over.
		resp, err := newJarClient(t).Get(s.URL + "/counter/")
		if err != nil {
			t.Fatal(err)
		}
		var v struct{ N int }
		_ = json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if v.N != 1 {
			t.Errorf("fresh session counter = %d, want 1", v.N)
		}
	})
}
