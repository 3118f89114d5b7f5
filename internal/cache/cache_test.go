package cache

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
	c := New(60*time.Second, 1<<20)
	for _, tc := range []struct {
		name    string
		status  int
		header  http.Header
		wantTTL time.Duration // 0: not storable
	}{
		{"max-age", 200, http.Header{"Cache-Control": {"max-age=30"}}, 30 * time.Second},
		{"capped by --max-age", 200, http.Header{"Cache-Control": {"public, max-age=3600"}}, 60 * time.Second},
		{"s-maxage wins", 200, http.Header{"Cache-Control": {"max-age=5, s-maxage=20"}}, 20 * time.Second},
		{"quoted", 200, http.Header{"Cache-Control": {`max-age="7"`}}, 7 * time.Second},
		{"split over values", 200, http.Header{"Cache-Control": {"public", "max-age=9"}}, 9 * time.Second},
		{"404 with max-age", 404, http.Header{"Cache-Control": {"max-age=9"}}, 9 * time.Second},
		{"no header", 200, http.Header{}, 0},
		{"max-age=0", 200, http.Header{"Cache-Control": {"max-age=0"}}, 0},
		{"bad number", 200, http.Header{"Cache-Control": {"max-age=soon"}}, 0},
		{"no-store", 200, http.Header{"Cache-Control": {"max-age=30, no-store"}}, 0},
		{"no-cache", 200, http.Header{"Cache-Control": {"no-cache, max-age=30"}}, 0},
		{"private", 200, http.Header{"Cache-Control": {"private, max-age=30"}}, 0},
		{"private with fields", 200, http.Header{"Cache-Control": {`private="x", max-age=30`}}, 0},
		{"cookie", 200, http.Header{"Cache-Control": {"max-age=30"}, "Set-Cookie": {"a=b"}}, 0},
		{"vary star", 200, http.Header{"Cache-Control": {"max-age=30"}, "Vary": {"Cookie, *"}}, 0},
		{"5xx", 503, http.Header{"Cache-Control": {"max-age=30"}}, 0},
		{"partial", 206, http.Header{"Cache-Control": {"max-age=30"}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ttl, _, ok := c.policy(tc.status, tc.header, nil)
			if !ok {
				ttl = 0
			}
			if ttl != tc.wantTTL {
				t.Errorf("ttl = %v, want %v", ttl, tc.wantTTL)
			}
		})
	}
}

func request(method, target string, header ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func store(c *Cache, r *http.Request, body string, now time.Time, header ...string) {
	h := http.Header{"Cache-Control": {"max-age=10"}}
	control := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.HasPrefix(header[i], "X-Wsgo-") {
			control.Add(header[i], header[i+1])
		} else {
			h.Add(header[i], header[i+1])
		}
	}
	c.Store(r, http.StatusOK, h, control, []byte(body), now)
}

func hitBody(t *testing.T, c *Cache, r *http.Request, now time.Time) string {
	t.Helper()
	l := c.Lookup(r, now)
	if l.Hit == nil {
		return ""
	}
	w := httptest.NewRecorder()
	l.Hit.Serve(w, r, now)
	if l.Refresh != nil {
		l.Refresh.Done(now)
	}
	return w.Body.String()
}

func TestVariants(t *testing.T) {
	now := time.Now()
	c := New(time.Minute, 1<<20)
	store(c, request("GET", "/p", "Cookie", "sid=1; ga=a"), "user 1", now,
		"Vary", "Cookie", "X-Wsgo-Vary-Cookies", "sid")
	store(c, request("GET", "/p", "Cookie", "sid=2; ga=a"), "user 2", now,
		"Vary", "Cookie", "X-Wsgo-Vary-Cookies", "sid")
	store(c, request("GET", "/lang", "Accept-Language", "fr"), "bonjour", now, "Vary", "accept-language")
	for _, tc := range []struct {
		r    *http.Request
		want string
	}{
		{request("GET", "/p", "Cookie", "sid=1; ga=b"), "user 1"},
		{request("GET", "/p", "Cookie", "ga=c; sid=2"), "user 2"},
		{request("GET", "/p", "Cookie", "sid=3"), ""},
		{request("GET", "/p"), ""},
		{request("GET", "/lang", "Accept-Language", "fr"), "bonjour"},
		{request("GET", "/lang", "Accept-Language", "de"), ""},
		{request("GET", "/lang?x=1", "Accept-Language", "fr"), ""},
		{request("OPTIONS", "/lang", "Accept-Language", "fr"), ""},
	} {
		if got := hitBody(t, c, tc.r, now); got != tc.want {
			t.Errorf("%s %s %v: got %q, want %q", tc.r.Method, tc.r.URL, tc.r.Header, got, tc.want)
		}
	}
}

func TestRefreshIsGivenOnce(t *testing.T) {
	now := time.Now()
	c := New(time.Minute, 1<<20)
	r := request("GET", "/r")
	store(c, r, "v1", now)
	if l := c.Lookup(r, now.Add(4*time.Second)); l.Hit == nil || l.Refresh != nil {
		t.Fatalf("first half: want a hit without refresh, got %+v", l)
	}
	first := c.Lookup(r, now.Add(6*time.Second))
	if first.Hit == nil || first.Refresh == nil {
		t.Fatalf("second half: want a hit with the refresh, got %+v", first)
	}
	if l := c.Lookup(r, now.Add(7*time.Second)); l.Hit == nil || l.Refresh != nil {
		t.Fatalf("second half, refresh under way: want a plain hit, got %+v", l)
	}
	first.Refresh.Done(now.Add(7 * time.Second))

	expired := c.Lookup(r, now.Add(11*time.Second))
	if expired.Hit != nil || expired.Refresh == nil {
		t.Fatalf("expired: want the refresh and no hit, got %+v", expired)
	}
	waiting := c.Lookup(r, now.Add(11*time.Second))
	if waiting.Wait == nil {
		t.Fatalf("expired, refresh under way: want to wait, got %+v", waiting)
	}
	store(c, r, "v2", now.Add(12*time.Second))
	expired.Refresh.Done(now.Add(12 * time.Second))
	<-waiting.Wait
	if got := hitBody(t, c, r, now.Add(12*time.Second)); got != "v2" {
		t.Errorf("after the refresh: got %q, want v2", got)
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	now := time.Now()
	body := strings.Repeat("x", 300<<10)
	c := New(time.Minute, 1<<20) // room for three
	for _, p := range []string{"/1", "/2", "/3"} {
		store(c, request("GET", p), body, now)
	}
	hitBody(t, c, request("GET", "/1"), now) // now /2 is the least recently used
	store(c, request("GET", "/4"), body, now)
	for p, want := range map[string]bool{"/1": true, "/2": false, "/3": true, "/4": true} {
		if got := hitBody(t, c, request("GET", p), now) != ""; got != want {
			t.Errorf("%s cached = %v, want %v", p, got, want)
		}
	}
	if c.size > c.limit {
		t.Errorf("size %d over the limit %d", c.size, c.limit)
	}
}

func TestServe(t *testing.T) {
	now := time.Now()
	c := New(time.Minute, 1<<20)
	store(c, request("GET", "/e"), "hello", now, "Etag", `"v1"`)
	for _, tc := range []struct {
		r          *http.Request
		wantStatus int
		wantBody   string
	}{
		{request("GET", "/e"), 200, "hello"},
		{request("HEAD", "/e"), 200, ""},
		{request("GET", "/e", "If-None-Match", `"v0", W/"v1"`), 304, ""},
		{request("GET", "/e", "If-None-Match", `"v0"`), 200, "hello"},
	} {
		l := c.Lookup(tc.r, now.Add(2*time.Second))
		if l.Hit == nil {
			t.Fatalf("%s %v: no hit", tc.r.Method, tc.r.Header)
		}
		w := httptest.NewRecorder()
		status, n := l.Hit.Serve(w, tc.r, now.Add(2*time.Second))
		if status != tc.wantStatus || w.Code != tc.wantStatus || w.Body.String() != tc.wantBody || n != int64(len(tc.wantBody)) {
			t.Errorf("%s %v: got %d %q (%d bytes), want %d %q", tc.r.Method, tc.r.Header, w.Code, w.Body, n, tc.wantStatus, tc.wantBody)
		}
		if age := w.Header().Get("Age"); age != "2" {
			t.Errorf("Age = %q, want 2", age)
		}
	}
}
