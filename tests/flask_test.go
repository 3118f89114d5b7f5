package tests

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestFlask(t *testing.T) {
	t.Parallel()
	s := startServer(t, "flaskapp") // only `app` is defined: the fallback

	t.Run("routes", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			path   string
			status int
			body   string
		}{
			{"/", 200, "hello from flask"},
			{"/user/ada", 200, "user ada"},
			{"/user/caf%C3%A9", 200, "user café"},
			{"/nowhere", 404, ""},
		} {
			r := get(t, s.URL+tc.path)
			wantStatus(t, r, tc.status)
			if tc.body != "" && r.String() != tc.body {
				t.Errorf("GET %s = %q, want %q", tc.path, r.Body, tc.body)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		r := get(t, s.URL+"/json")
		wantStatus(t, r, 200)
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
		var v struct {
			OK     bool   `json:"ok"`
			Items  []int  `json:"items"`
			Method string `json:"method"`
		}
		if err := json.Unmarshal(r.Body, &v); err != nil || !v.OK || len(v.Items) != 3 || v.Method != "GET" {
			t.Errorf("json = %s (%v)", r.Body, err)
		}
	})

	t.Run("form post", func(t *testing.T) {
		t.Parallel()
		form := url.Values{"name": {"Zoë"}, "colour": {"blue & green"}}
		r := post(t, s.URL+"/form", "application/x-www-form-urlencoded", []byte(form.Encode()))
		wantStatus(t, r, 200)
		if r.String() != "name=Zoë colour=blue & green" {
			t.Errorf("body = %q", r.Body)
		}
	})

	t.Run("10 MB multipart upload", func(t *testing.T) {
		t.Parallel()
		data := pseudoRandom(10_000_000, 99)
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("note", "big one")
		fw, _ := mw.CreateFormFile("file", "payload.bin")
		_, _ = fw.Write(data)
		_ = mw.Close()
		r := post(t, s.URL+"/upload", mw.FormDataContentType(), buf.Bytes())
		wantStatus(t, r, 200)
		var v struct {
			Filename, SHA256, Note string
			Size                   int
		}
		if err := json.Unmarshal(r.Body, &v); err != nil {
			t.Fatalf("answer %q: %v", r.Body, err)
		}
		if v.SHA256 != sha256hex(data) || v.Size != len(data) || v.Filename != "payload.bin" || v.Note != "big one" {
			t.Errorf("upload seen as %+v, want size %d sha256 %s", v, len(data), sha256hex(data))
		}
	})

	t.Run("cookies", func(t *testing.T) {
		t.Parallel()
		r := get(t, s.URL+"/setcookie")
		wantStatus(t, r, 200)
		var cookie *http.Cookie
		for _, c := range (&http.Response{Header: r.Header}).Cookies() {
			if c.Name == "flavour" {
				cookie = c
			}
		}
		if cookie == nil || cookie.Value != "chocolate" {
			t.Fatalf("Set-Cookie headers %q do not set flavour=chocolate", r.Header.Values("Set-Cookie"))
		}
		req, _ := http.NewRequest("GET", s.URL+"/getcookie", nil)
		req.AddCookie(cookie)
		if got := do(t, req).String(); got != "flavour=chocolate" {
			t.Errorf("cookie read back as %q", got)
		}
		if got := get(t, s.URL+"/getcookie").String(); got != "flavour=none" {
			t.Errorf("without the cookie: %q", got)
		}
	})

	t.Run("redirect", func(t *testing.T) {
		t.Parallel()
		r := get(t, s.URL+"/redirect")
		wantStatus(t, r, 302)
		loc := r.Header.Get("Location")
		if !strings.HasSuffix(loc, "/target") {
			t.Fatalf("Location = %q, want .../target", loc)
		}
		target, err := url.Parse(s.URL + "/redirect")
		if err != nil {
			t.Fatal(err)
		}
		next, _ := target.Parse(loc)
		if got := get(t, next.String()).String(); got != "target reached" {
			t.Errorf("following the redirect gave %q", got)
		}
	})
}
