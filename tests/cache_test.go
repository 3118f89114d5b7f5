package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The response cache tests run testdata/cacheapp.py, which counts its calls
// per path (GET /count/PATH tells how many there were) and shapes each
// answer from the query string: cc= sets Cache-Control, vary= sets Vary,
// and so on. Every test uses paths of its own, so that the counts are its
// own even when subtests share a server.

// page returns path with a query of the given key/value pairs, in order.
func page(path string, kv ...string) string {
	if len(kv) == 0 {
		return path
	}
	var q []string
	for i := 0; i+1 < len(kv); i += 2 {
		q = append(q, url.QueryEscape(kv[i])+"="+url.QueryEscape(kv[i+1]))
	}
	return path + "?" + strings.Join(q, "&")
}

// cacheable is the query that makes cacheapp answer Cache-Control:
// max-age=30, plus kv.
func cacheable(path string, kv ...string) string {
	return page(path, append([]string{"cc", "max-age=30"}, kv...)...)
}

// trySend sends method target (a path with its query) to s through c, with
// extra headers given as "Name: value" ("Host: h" sets the request's Host),
// and reads the whole answer. It reports failures instead of failing the
// test, for use off the test's goroutine.
func trySend(c *http.Client, s *server, method, target string, hdr ...string) (*response, error) {
	req, err := http.NewRequest(method, s.URL+target, nil)
	if err != nil {
		return nil, err
	}
	for _, h := range hdr {
		name, value, ok := strings.Cut(h, ": ")
		if !ok {
			return nil, fmt.Errorf("bad header %q", h)
		}
		if strings.EqualFold(name, "Host") {
			req.Host = value
		} else {
			req.Header.Add(name, value)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading body: %w", method, target, err)
	}
	return &response{Status: resp.StatusCode, StatusLine: resp.Status, Header: resp.Header,
		Body: body, TE: resp.TransferEncoding}, nil
}

// send is trySend with the shared client, failing the test on error.
func send(t testing.TB, s *server, method, target string, hdr ...string) *response {
	t.Helper()
	r, err := trySend(client, s, method, target, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// recentAge bounds the Age of an entry a test stored moments before (a
// loaded machine may take a while between two requests).
const recentAge = 5

var callsRE = regexp.MustCompile(`^calls=(\d+) `)

// callsOf is the call number cacheapp put in the body, or -1.
func callsOf(r *response) int {
	m := callsRE.FindSubmatch(r.Body)
	if m == nil {
		return -1
	}
	return atoiOr(string(m[1]))
}

// appCount is how often cacheapp ran for path (without its query).
func appCount(t testing.TB, s *server, path string) int {
	t.Helper()
	r := get(t, s.URL+"/count"+path)
	wantStatus(t, r, 200)
	n := atoiOr(r.String())
	if n < 0 {
		t.Fatalf("GET /count%s answered %q", path, r.Body)
	}
	return n
}

// wantCount fails the test unless cacheapp ran exactly n times for path.
func wantCount(t testing.TB, s *server, path string, n int) {
	t.Helper()
	if got := appCount(t, s, path); got != n {
		t.Fatalf("the app ran %d time(s) for %s, want %d", got, path, n)
	}
}

// ageOf parses the Age header: its value and whether there is a valid one.
func ageOf(r *response) (int, bool) {
	v := r.Header.Values("Age")
	if len(v) != 1 {
		return 0, false
	}
	n, err := strconv.Atoi(v[0])
	return n, err == nil && n >= 0
}

// wantFresh fails the test unless r is a 200 the app made for its call
// number calls (r may be a miss or a hit: see wantHit).
func wantFresh(t testing.TB, what string, r *response, calls int) {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("%s: status %q, want 200; body %.200q", what, r.StatusLine, r.Body)
	}
	if got := callsOf(r); got != calls {
		t.Fatalf("%s: answer of call %d, want call %d; body %.200q", what, got, calls, r.Body)
	}
}

// wantHit is wantFresh for an answer that must come from the cache: it
// carries an Age of at most maxAge seconds.
func wantHit(t testing.TB, what string, r *response, calls, maxAge int) {
	t.Helper()
	wantFresh(t, what, r, calls)
	age, ok := ageOf(r)
	if !ok {
		t.Fatalf("%s: a cache hit needs an Age header of integer seconds, got %q", what, r.Header.Values("Age"))
	}
	if age > maxAge {
		t.Fatalf("%s: Age %d, want at most %d", what, age, maxAge)
	}
}

// sleepUntil waits for a moment in a cache entry's life: waiting for an
// entry to age is what these tests are about, there is no signal for it.
func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// concurrentClient can keep n connections open, for requests sent at once.
func concurrentClient(n int) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: n,
		DisableCompression:  true,
	}}
}

// sendAll sends n identical requests at once (released together once every
// goroutine is ready) and returns the answers, failing the test on any error.
func sendAll(t testing.TB, c *http.Client, s *server, n int, method, target string, hdr ...string) []*response {
	t.Helper()
	out := make([]*response, n)
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			out[i], errs[i] = trySend(c, s, method, target, hdr...)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// warm opens n keep-alive connections in c, so that n requests sent at once
// later do not first spend time connecting.
func warm(t testing.TB, c *http.Client, s *server, n int) {
	t.Helper()
	for _, r := range sendAll(t, c, s, n, "GET", "/count/warm") {
		wantStatus(t, r, 200)
	}
}

// TestCacheHit: a cacheable GET is answered once by the app; the same GET
// again comes from the cache, with the same body and an Age header, even
// when headers the response does not vary on differ.
func TestCacheHit(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--max-age", "60")

	for _, tc := range []struct{ name, cc string }{
		{"max-age", "max-age=30"},
		{"public first", "public, max-age=30"},
		{"max-age first", "max-age=30, public"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "/hit-" + strings.ReplaceAll(tc.name, " ", "-")
			target := page(path, "cc", tc.cc)
			first := send(t, s, "GET", target)
			wantFresh(t, "first GET "+target, first, 1)
			second := send(t, s, "GET", target, "User-Agent: another-agent/1.0", "Accept: text/html")
			wantHit(t, "second GET "+target, second, 1, recentAge)
			if second.String() != first.String() {
				t.Errorf("hit body %q, miss body %q", second.Body, first.Body)
			}
			for _, h := range []string{"Content-Type", "Cache-Control", "Content-Length"} {
				if a, b := first.Header.Get(h), second.Header.Get(h); a != b {
					t.Errorf("%s: miss has %q, hit has %q", h, a, b)
				}
			}
			wantCount(t, s, path, 1)
		})
	}
}

// TestCacheOff: without --max-age (or with --max-age 0) nothing is cached.
func TestCacheOff(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{nil, {"--max-age", "0"}} {
		t.Run(fmt.Sprintf("args=%q", args), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "cacheapp", args...)
			target := cacheable("/off")
			for i := 1; i <= 3; i++ {
				r := send(t, s, "GET", target)
				wantFresh(t, fmt.Sprintf("GET %d", i), r, i)
				if _, ok := ageOf(r); ok {
					t.Errorf("GET %d carries Age %q with the cache off", i, r.Header.Get("Age"))
				}
			}
			wantCount(t, s, "/off", 3)
		})
	}
}

// TestCacheMaxAgeCap: an entry lives min(app's max-age, --max-age) seconds:
// with --max-age 1, a page the app says may be kept 100 s is asked of the
// app again once a second has passed.
func TestCacheMaxAgeCap(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--max-age", "1")
	const path = "/capped"
	target := page(path, "cc", "max-age=100")
	wantFresh(t, "first GET", send(t, s, "GET", target), 1)
	t0 := time.Now()
	wantHit(t, "immediate second GET", send(t, s, "GET", target), 1, 1)

	sleepUntil(t0.Add(1200 * time.Millisecond))
	// Expired: the app answers again. (Had the second GET landed in the
	// entry's second half, a background refresh made call 2 already and
	// this is that answer; either way it is call 2, not call 1.)
	wantFresh(t, "GET after 1.2 s", send(t, s, "GET", target), 2)
	wantCount(t, s, path, 2)
}

// TestCacheNeverCached: responses and requests the cache must leave alone.
// Each case sends the same request twice: the app must answer both.
func TestCacheNeverCached(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--max-age", "60")

	for _, tc := range []struct {
		name   string
		method string
		query  []string
		hdr    []string
		status int
	}{
		{name: "no cache-control", query: []string{}},
		{name: "max-age=0", query: []string{"cc", "max-age=0"}},
		{name: "set-cookie", query: []string{"cc", "max-age=30", "cookie", "1"}},
		{name: "body over 1 MiB", query: []string{"cc", "max-age=30", "size", "1100000"}},
		{name: "body far over 1 MiB", query: []string{"cc", "max-age=30", "size", "2000000"}},
		{name: "no-store", query: []string{"cc", "max-age=30, no-store"}},
		{name: "no-cache", query: []string{"cc", "no-cache, max-age=30"}},
		{name: "private", query: []string{"cc", "private, max-age=30"}},
		{name: "vary star", query: []string{"cc", "max-age=30", "vary", "*"}},
		{name: "status 500", query: []string{"cc", "max-age=30", "status", "500"}, status: 500},
		{name: "status 503", query: []string{"cc", "max-age=30", "status", "503"}, status: 503},
		{name: "POST", method: "POST", query: []string{"cc", "max-age=30"}},
		{name: "authorization", query: []string{"cc", "max-age=30"}, hdr: []string{"Authorization: Basic dXNlcjpwYXNz"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := "/never-" + strings.NewReplacer(" ", "-", "=", "-").Replace(tc.name)
			target := page(path, tc.query...)
			method := tc.method
			if method == "" {
				method = "GET"
			}
			status := tc.status
			if status == 0 {
				status = 200
			}
			for i := 1; i <= 2; i++ {
				r := send(t, s, method, target, tc.hdr...)
				if r.Status != status || callsOf(r) != i {
					t.Fatalf("%s %s #%d: status %q, call %d; want status %d from call %d (body %.200q)",
						method, target, i, r.StatusLine, callsOf(r), status, i, r.Body)
				}
			}
			wantCount(t, s, path, 2)
		})
	}

	// A body just under 1 MiB is cached: the limit is not lower.
	t.Run("body under 1 MiB is cached", func(t *testing.T) {
		t.Parallel()
		target := cacheable("/under-1mib", "size", "1000000")
		first := send(t, s, "GET", target)
		wantFresh(t, "first GET", first, 1)
		second := send(t, s, "GET", target)
		wantHit(t, "second GET", second, 1, recentAge)
		if len(second.Body) != 1000000 {
			t.Fatalf("hit body has %d bytes, want 1000000", len(second.Body))
		}
		wantCount(t, s, "/under-1mib", 1)
	})

	// A POST is never answered from an entry a GET left.
	t.Run("POST after cached GET", func(t *testing.T) {
		t.Parallel()
		target := cacheable("/post-after-get")
		wantFresh(t, "GET", send(t, s, "GET", target), 1)
		wantFresh(t, "POST", send(t, s, "POST", target), 2)
		wantHit(t, "GET again", send(t, s, "GET", target), 1, recentAge)
		wantCount(t, s, "/post-after-get", 2)
	})

	// A request with Authorization is not served from the cache either,
	// and its answer does not replace the entry.
	t.Run("authorization not served from cache", func(t *testing.T) {
		t.Parallel()
		target := cacheable("/auth-after-anon")
		wantFresh(t, "anonymous GET", send(t, s, "GET", target), 1)
		auth := "Authorization: Bearer secret-token"
		wantFresh(t, "GET with Authorization", send(t, s, "GET", target, auth), 2)
		wantFresh(t, "GET with Authorization again", send(t, s, "GET", target, auth), 3)
		wantHit(t, "anonymous GET again", send(t, s, "GET", target), 1, recentAge)
		wantCount(t, s, "/auth-after-anon", 3)
	})

	t.Run("authorization answer not stored", func(t *testing.T) {
		t.Parallel()
		target := cacheable("/auth-first")
		wantFresh(t, "GET with Authorization", send(t, s, "GET", target, "Authorization: Basic YTpi"), 1)
		wantFresh(t, "anonymous GET", send(t, s, "GET", target), 2)
		wantHit(t, "anonymous GET again", send(t, s, "GET", target), 2, recentAge)
		wantCount(t, s, "/auth-first", 2)
	})
}

// TestCacheVary: Vary is honoured for each header it names, and
// X-WSGo-Vary-Cookies narrows Vary: Cookie to the cookies it lists.
func TestCacheVary(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--max-age", "60")

	type step struct {
		hdr   []string
		calls int  // the call whose answer is expected
		hit   bool // whether it must come from the cache
	}
	run := func(t *testing.T, path string, target string, steps []step, total int) {
		t.Helper()
		for i, st := range steps {
			r := send(t, s, "GET", target, st.hdr...)
			what := fmt.Sprintf("step %d: GET %s with %q", i+1, path, st.hdr)
			if st.hit {
				wantHit(t, what, r, st.calls, recentAge)
			} else {
				wantFresh(t, what, r, st.calls)
			}
			if v := r.Header.Values("X-Wsgo-Vary-Cookies"); len(v) > 0 {
				t.Errorf("%s: X-WSGo-Vary-Cookies reached the client: %q", what, v)
			}
		}
		wantCount(t, s, path, total)
	}

	t.Run("cookie: users never see each other's page", func(t *testing.T) {
		t.Parallel()
		const path = "/vary-cookie"
		target := cacheable(path, "vary", "Cookie")
		for i, st := range []struct {
			cookie string
			calls  int
			hit    bool
		}{
			{"sessionid=1", 1, false},
			{"sessionid=2", 2, false},
			{"sessionid=1", 1, true},
			{"sessionid=2", 2, true},
			{"", 3, false},
			{"sessionid=1; _ga=x", 4, false}, // without X-WSGo-Vary-Cookies the whole header counts
			{"", 3, true},
			{"sessionid=1", 1, true},
		} {
			var hdr []string
			if st.cookie != "" {
				hdr = append(hdr, "Cookie: "+st.cookie)
			}
			r := send(t, s, "GET", target, hdr...)
			what := fmt.Sprintf("step %d: GET with Cookie %q", i+1, st.cookie)
			if st.hit {
				wantHit(t, what, r, st.calls, recentAge)
			} else {
				wantFresh(t, what, r, st.calls)
			}
			if want := "cookie=" + st.cookie + " "; !strings.Contains(r.String(), want) {
				t.Fatalf("%s: got someone else's page: %q", what, r.Body)
			}
		}
		wantCount(t, s, path, 4)
	})

	t.Run("vary cookies ignores other cookies", func(t *testing.T) {
		t.Parallel()
		const path = "/vary-cookies-one"
		target := cacheable(path, "vary", "Cookie", "varycookies", "sessionid")
		run(t, path, target, []step{
			{[]string{"Cookie: sessionid=1; _ga=x"}, 1, false},
			{[]string{"Cookie: sessionid=1; _ga=y"}, 1, true},
			{[]string{"Cookie: _ga=z; sessionid=1"}, 1, true},
			{[]string{"Cookie: sessionid=2; _ga=x"}, 2, false},
			{[]string{"Cookie: sessionid=2"}, 2, true},
			{[]string{"Cookie: sessionid=12"}, 3, false},
			{[]string{"Cookie: sessionid=1; _ga=w"}, 1, true},
		}, 3)
		// The hit for "sessionid=1; _ga=y" is the page made for
		// "sessionid=1; _ga=x": check the entry is the first user's.
		r := send(t, s, "GET", target, "Cookie: sessionid=1; _ga=y")
		if !strings.Contains(r.String(), "cookie=sessionid=1; _ga=x ") {
			t.Errorf("the shared entry is not sessionid=1's page: %q", r.Body)
		}
	})

	t.Run("vary cookies without the cookie", func(t *testing.T) {
		t.Parallel()
		const path = "/vary-cookies-none"
		target := cacheable(path, "vary", "Cookie", "varycookies", "sessionid")
		run(t, path, target, []step{
			{nil, 1, false},
			{[]string{"Cookie: _ga=q"}, 1, true}, // no sessionid either
			{[]string{"Cookie: sessionid=1"}, 2, false},
			{nil, 1, true},
		}, 2)
	})

	t.Run("vary cookies lists two", func(t *testing.T) {
		t.Parallel()
		const path = "/vary-cookies-two"
		target := cacheable(path, "vary", "Cookie", "varycookies", "sessionid, csrftoken")
		run(t, path, target, []step{
			{[]string{"Cookie: sessionid=1; csrftoken=t1; _ga=x"}, 1, false},
			{[]string{"Cookie: csrftoken=t1; _ga=y; sessionid=1"}, 1, true},
			{[]string{"Cookie: sessionid=1; csrftoken=t2; _ga=x"}, 2, false},
			{[]string{"Cookie: sessionid=1; _ga=x"}, 3, false},
			{[]string{"Cookie: sessionid=1; csrftoken=t1"}, 1, true},
		}, 3)
	})

	t.Run("accept-language", func(t *testing.T) {
		t.Parallel()
		const path = "/vary-lang"
		target := cacheable(path, "vary", "Accept-Language")
		run(t, path, target, []step{
			{[]string{"Accept-Language: en"}, 1, false},
			{[]string{"Accept-Language: fr"}, 2, false},
			{[]string{"Accept-Language: en", "Cookie: sessionid=9"}, 1, true}, // Cookie is not in Vary
			{[]string{"Accept-Language: fr"}, 2, true},
			{nil, 3, false},
			{nil, 3, true},
		}, 3)
		for lang, calls := range map[string]int{"en": 1, "fr": 2} {
			r := send(t, s, "GET", target, "Accept-Language: "+lang)
			if callsOf(r) != calls || !strings.HasSuffix(r.String(), " lang="+lang) {
				t.Errorf("Accept-Language %s got %q", lang, r.Body)
			}
		}
	})

	t.Run("two headers", func(t *testing.T) {
		t.Parallel()
		const path = "/vary-two"
		target := cacheable(path, "vary", "Accept-Language, X-Variant")
		run(t, path, target, []step{
			{[]string{"Accept-Language: en", "X-Variant: a"}, 1, false},
			{[]string{"Accept-Language: en", "X-Variant: b"}, 2, false},
			{[]string{"Accept-Language: fr", "X-Variant: a"}, 3, false},
			{[]string{"Accept-Language: en", "X-Variant: a"}, 1, true},
			{[]string{"Accept-Language: en", "X-Variant: b"}, 2, true},
			{[]string{"Accept-Language: fr", "X-Variant: a"}, 3, true},
		}, 3)
	})
}

// TestCacheKey: the key covers host, path and query.
func TestCacheKey(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--max-age", "60")

	t.Run("host", func(t *testing.T) {
		t.Parallel()
		const path = "/key-host"
		target := cacheable(path)
		for i, st := range []struct {
			host  string
			calls int
			hit   bool
		}{
			{"a.example", 1, false},
			{"b.example", 2, false},
			{"a.example", 1, true},
			{"b.example", 2, true},
		} {
			r := send(t, s, "GET", target, "Host: "+st.host)
			what := fmt.Sprintf("step %d: GET with Host %s", i+1, st.host)
			if st.hit {
				wantHit(t, what, r, st.calls, recentAge)
			} else {
				wantFresh(t, what, r, st.calls)
			}
			if !strings.Contains(r.String(), " host="+st.host+" ") {
				t.Fatalf("%s: got the page of another host: %q", what, r.Body)
			}
		}
		wantCount(t, s, path, 2)
	})

	t.Run("query", func(t *testing.T) {
		t.Parallel()
		const path = "/key-query"
		for i, st := range []struct {
			x     string
			calls int
			hit   bool
		}{
			{"1", 1, false},
			{"2", 2, false},
			{"1", 1, true},
			{"2", 2, true},
		} {
			r := send(t, s, "GET", cacheable(path, "x", st.x))
			what := fmt.Sprintf("step %d: GET %s?x=%s", i+1, path, st.x)
			if st.hit {
				wantHit(t, what, r, st.calls, recentAge)
			} else {
				wantFresh(t, what, r, st.calls)
			}
		}
		wantCount(t, s, path, 2)
	})

	t.Run("path", func(t *testing.T) {
		t.Parallel()
		wantFresh(t, "GET /key-path-a", send(t, s, "GET", cacheable("/key-path-a")), 1)
		wantFresh(t, "GET /key-path-b", send(t, s, "GET", cacheable("/key-path-b")), 1)
		wantHit(t, "GET /key-path-a again", send(t, s, "GET", cacheable("/key-path-a")), 1, recentAge)
		wantCount(t, s, "/key-path-b", 1)
	})
}

// TestCacheMethods: HEAD is answered from a cached GET; a HEAD miss does
// not make an entry for GET; OPTIONS has entries of its own.
func TestCacheMethods(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--max-age", "60")

	t.Run("HEAD from cached GET", func(t *testing.T) {
		t.Parallel()
		const path = "/head-from-get"
		target := cacheable(path)
		getResp := send(t, s, "GET", target)
		wantFresh(t, "GET", getResp, 1)

		// Over a raw connection, to see that no body follows the headers.
		headResp := rawHead(t, s, target)
		wantStatus(t, headResp, 200)
		if _, ok := ageOf(headResp); !ok {
			t.Errorf("HEAD from the cache has no valid Age header: %q", headResp.Header.Values("Age"))
		}
		if g, h := getResp.Header.Get("Content-Length"), headResp.Header.Get("Content-Length"); g != h {
			t.Errorf("HEAD Content-Length = %q, GET's = %q", h, g)
		}
		wantCount(t, s, path, 1)
	})

	t.Run("HEAD miss is no entry for GET", func(t *testing.T) {
		t.Parallel()
		const path = "/head-first"
		target := cacheable(path)
		r := send(t, s, "HEAD", target)
		wantStatus(t, r, 200)
		wantCount(t, s, path, 1)
		getResp := send(t, s, "GET", target)
		wantFresh(t, "GET after HEAD", getResp, 2)
		if !strings.Contains(getResp.String(), " method=GET ") {
			t.Errorf("GET body %q is not the GET's", getResp.Body)
		}
		// That GET is cached now, and HEAD is answered from it.
		r = send(t, s, "HEAD", target)
		wantStatus(t, r, 200)
		if _, ok := ageOf(r); !ok {
			t.Errorf("HEAD after a cached GET has no valid Age header: %q", r.Header.Values("Age"))
		}
		wantCount(t, s, path, 2)
	})

	t.Run("OPTIONS cached separately", func(t *testing.T) {
		t.Parallel()
		const path = "/options"
		target := cacheable(path)
		for i, st := range []struct {
			method string
			calls  int
			hit    bool
		}{
			{"GET", 1, false},
			{"OPTIONS", 2, false},
			{"GET", 1, true},
			{"OPTIONS", 2, true},
		} {
			r := send(t, s, st.method, target)
			what := fmt.Sprintf("step %d: %s", i+1, st.method)
			if st.hit {
				wantHit(t, what, r, st.calls, recentAge)
			} else {
				wantFresh(t, what, r, st.calls)
			}
			if !strings.Contains(r.String(), " method="+st.method+" ") {
				t.Fatalf("%s: got the answer to another method: %q", what, r.Body)
			}
		}
		wantCount(t, s, path, 2)
	})
}

// TestCacheEviction: --cache-size bounds the cache, and the least recently
// used entry goes first. With --cache-size 1 (a megabyte, whether 10^6 or
// 2^20 bytes), two 400 kB pages fit and three do not.
func TestCacheEviction(t *testing.T) {
	t.Parallel()
	const size = "400000"
	target := func(prefix string, i int) string {
		return cacheable(fmt.Sprintf("%s%d", prefix, i), "size", size)
	}
	fetchNew := func(t *testing.T, s *server, prefix string, i int) {
		t.Helper()
		r := send(t, s, "GET", target(prefix, i))
		wantFresh(t, fmt.Sprintf("first GET of page %d", i), r, 1)
		if len(r.Body) != 400000 {
			t.Fatalf("page %d has %d bytes", i, len(r.Body))
		}
	}

	t.Run("oldest goes", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, "cacheapp", "--max-age", "60", "--cache-size", "1")
		const prefix = "/evict-order-"
		for i := 1; i <= 4; i++ {
			fetchNew(t, s, prefix, i)
		}
		wantHit(t, "page 4 again", send(t, s, "GET", target(prefix, 4)), 1, recentAge)
		wantFresh(t, "page 1 again", send(t, s, "GET", target(prefix, 1)), 2)
		wantCount(t, s, prefix+"1", 2)
		wantCount(t, s, prefix+"4", 1)
	})

	t.Run("least recently used goes", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, "cacheapp", "--max-age", "60", "--cache-size", "1")
		const prefix = "/evict-lru-"
		fetchNew(t, s, prefix, 1)
		fetchNew(t, s, prefix, 2)
		// Page 1 is used again: now page 2 is the least recently used,
		// though page 1 is the oldest.
		wantHit(t, "page 1 again", send(t, s, "GET", target(prefix, 1)), 1, recentAge)
		fetchNew(t, s, prefix, 3)
		wantHit(t, "page 1 after page 3", send(t, s, "GET", target(prefix, 1)), 1, recentAge)
		wantHit(t, "page 3 again", send(t, s, "GET", target(prefix, 3)), 1, recentAge)
		wantFresh(t, "page 2 again", send(t, s, "GET", target(prefix, 2)), 2)
		wantCount(t, s, prefix+"1", 1)
		wantCount(t, s, prefix+"2", 2)
		wantCount(t, s, prefix+"3", 1)
	})
}

// TestCacheNoStampede: once an entry has expired, requests that arrive
// together for it make one app call, and all get its answer.
func TestCacheNoStampede(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--max-age", "60")
	const path, n = "/stampede", 50
	// max-age=1: the app's limit is below --max-age. The app takes 0.3 s,
	// so that the 50 requests all arrive while it runs.
	target := page(path, "cc", "max-age=1", "sleep", "0.3")
	wantFresh(t, "first GET", send(t, s, "GET", target), 1)
	t0 := time.Now() // the entry was stored before this
	c := concurrentClient(n)
	defer c.CloseIdleConnections()
	warm(t, c, s, n)
	wantCount(t, s, path, 1)

	sleepUntil(t0.Add(1300 * time.Millisecond)) // expired
	for i, r := range sendAll(t, c, s, n, "GET", target) {
		wantFresh(t, fmt.Sprintf("concurrent GET %d", i), r, 2)
	}
	wantCount(t, s, path, 2)
}

// TestCacheRefresh: in the second half of an entry's life a hit is still
// served from the cache, and one background request to the app refreshes
// the entry, whose next hit has the new answer.
func TestCacheRefresh(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--max-age", "60")

	// refreshed waits until the entry at target has the answer of call 2,
	// then checks that the app ran exactly twice for path.
	refreshed := func(t *testing.T, path, target string) {
		t.Helper()
		waitFor(t, waitTimeout, "the background refresh of "+path, func() bool {
			return appCount(t, s, path) >= 2
		})
		var last *response
		waitFor(t, waitTimeout, "a hit with the refreshed answer of "+path, func() bool {
			last = send(t, s, "GET", target)
			return callsOf(last) == 2
		})
		wantHit(t, "GET after the refresh", last, 2, 1)
		wantCount(t, s, path, 2)
	}

	t.Run("one request", func(t *testing.T) {
		t.Parallel()
		const path = "/refresh-one"
		target := page(path, "cc", "max-age=2")
		wantFresh(t, "first GET", send(t, s, "GET", target), 1)
		t0 := time.Now()

		sleepUntil(t0.Add(1200 * time.Millisecond)) // second half
		wantHit(t, "GET in the second half", send(t, s, "GET", target), 1, 2)
		refreshed(t, path, target)
	})

	t.Run("ten requests at once", func(t *testing.T) {
		t.Parallel()
		const path, n = "/refresh-ten", 10
		// The app takes 0.3 s, so that the refresh is still running while
		// the ten requests arrive.
		target := page(path, "cc", "max-age=2", "sleep", "0.3")
		wantFresh(t, "first GET", send(t, s, "GET", target), 1)
		t0 := time.Now()
		c := concurrentClient(n)
		defer c.CloseIdleConnections()
		warm(t, c, s, n)

		sleepUntil(t0.Add(1200 * time.Millisecond)) // second half
		for i, r := range sendAll(t, c, s, n, "GET", target) {
			wantHit(t, fmt.Sprintf("concurrent GET %d in the second half", i), r, 1, 2)
		}
		refreshed(t, path, target)
	})
}
