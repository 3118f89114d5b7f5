// Package cache is wsgo's response cache, controlled by the app's own
// response headers (Cache-Control max-age, Vary, X-WSGo-Vary-Cookies) and
// bounded by --max-age and --cache-size.
//
// It owns the stored responses, their freshness and eviction, and the rule
// that only one request at a time refreshes an entry. It does not run
// requests: the front asks it before queueing a request and tells it what
// the app answered; a hit is written from memory without touching Python.
package cache

import (
	"container/list"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Cache holds responses keyed by method, scheme, host, path and query, with
// one variant per combination of the request headers their Vary names.
type Cache struct {
	maxAge time.Duration
	limit  int64 // bytes

	mu        sync.Mutex
	size      int64
	resources map[string]*resource
	lru       list.List // of *entry, most recently used first
	// hits and misses count lookups that found a fresh entry and those
	// that sent the request to the app, for Stats.
	hits, misses int64
}

// Stats are the cache's counts, for the metrics.
type Stats struct {
	Hits, Misses int64
	// Bytes is the memory held by the stored responses, as --cache-size
	// counts it; Entries how many there are.
	Bytes, Entries int64
}

// Stats returns the cache's counts so far.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Hits: c.hits, Misses: c.misses, Bytes: c.size, Entries: int64(c.lru.Len())}
}

// New returns a cache keeping responses at most maxAge and about limit
// bytes in all.
func New(maxAge time.Duration, limit int64) *Cache {
	return &Cache{maxAge: maxAge, limit: limit, resources: map[string]*resource{}}
}

// resource is every variant stored under one key.
type resource struct {
	key      string
	variants []*entry
}

// entry is one stored response. Everything but elem and refreshing is
// immutable once stored, so a hit is written without holding the lock.
type entry struct {
	res    *resource
	elem   *list.Element
	status int
	header http.Header
	body   []byte
	stored time.Time
	ttl    time.Duration
	// The request headers the response varies on, and their values in
	// the request that produced it.
	vary    []string
	cookies []string // X-WSGo-Vary-Cookies: Cookie narrowed to these
	values  []string
	size    int64
	// refreshing is closed when the request refreshing this entry has
	// finished; nil when none is.
	refreshing chan struct{}
}

// MaxBody is the largest body stored (the spec's 1 MB).
const MaxBody = 1 << 20

// Lookup is what the cache has for a request.
type Lookup struct {
	// Hit, when set, is a fresh response to send.
	Hit *Hit
	// Refresh, when set, makes the caller the one request that refreshes
	// the entry: in the background after sending Hit, or, without a Hit,
	// by running the request itself. Its Done must be called.
	Refresh *Refresh
	// Wait, when set, is closed once another request has refreshed the
	// expired entry; look up again then.
	Wait <-chan struct{}
}

// Hit is a stored response.
type Hit struct{ e *entry }

// Refresh is the right to refresh one entry.
type Refresh struct {
	c *Cache
	e *entry
}

// Cacheable reports whether r may be answered from the cache or stored:
// GET, HEAD and OPTIONS without credentials.
func Cacheable(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		_, auth := r.Header["Authorization"]
		return !auth
	}
	return false
}

// key identifies a resource. HEAD shares GET's entries.
func key(r *http.Request) string {
	method := "G"
	if r.Method == http.MethodOptions {
		method = "O"
	}
	return method + " " + r.URL.Scheme + "://" + r.Host + r.URL.EscapedPath() + "?" + r.URL.RawQuery
}

// Lookup finds r's entry. A fresh one is a Hit; in the second half of its
// life the first request to see it also gets the Refresh. An expired one
// is handed to one request (a GET or OPTIONS) to refresh, while the others
// Wait for it, so that an expiring page costs the app one call, not one
// per client.
func (c *Cache) Lookup(r *http.Request, now time.Time) Lookup {
	k := key(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lookupLocked(k, r, now)
	if l.Hit != nil {
		c.hits++
	} else if l.Wait == nil {
		c.misses++ // (one that waits counts when it looks again)
	}
	return l
}

// lookupLocked is Lookup of r, whose key is k, with c.mu held.
func (c *Cache) lookupLocked(k string, r *http.Request, now time.Time) Lookup {
	res := c.resources[k]
	if res == nil {
		return Lookup{}
	}
	e := res.find(r)
	if e == nil {
		return Lookup{}
	}
	age := now.Sub(e.stored)
	if age < e.ttl {
		c.lru.MoveToFront(e.elem)
		l := Lookup{Hit: &Hit{e}}
		if 2*age >= e.ttl && e.refreshing == nil {
			e.refreshing = make(chan struct{})
			l.Refresh = &Refresh{c: c, e: e}
		}
		return l
	}
	switch {
	case e.refreshing != nil:
		return Lookup{Wait: e.refreshing}
	case r.Method == http.MethodHead:
		return Lookup{} // its answer has no body to store: let it pass
	}
	e.refreshing = make(chan struct{})
	return Lookup{Refresh: &Refresh{c: c, e: e}}
}

// find returns the variant whose varying request headers match r's.
func (res *resource) find(r *http.Request) *entry {
	for _, e := range res.variants {
		if e.matches(r) {
			return e
		}
	}
	return nil
}

func (e *entry) matches(r *http.Request) bool {
	for i, name := range e.vary {
		if varyValue(r, name, e.cookies) != e.values[i] {
			return false
		}
	}
	return true
}

// varyValue is the value of request header name that selects a variant:
// for Cookie narrowed by X-WSGo-Vary-Cookies, only the named cookies.
func varyValue(r *http.Request, name string, cookies []string) string {
	if name == "Cookie" && cookies != nil {
		var b strings.Builder
		for _, c := range cookies {
			if ck, err := r.Cookie(c); err == nil {
				b.WriteString(c)
				b.WriteByte('=')
				b.WriteString(ck.Value)
			}
			b.WriteByte(';')
		}
		return b.String()
	}
	v := r.Header[name]
	if len(v) == 1 {
		return v[0]
	}
	return strings.Join(v, ", ")
}

// Done ends the refresh. An entry that has expired by now and was not
// replaced is dropped, so that the requests that waited for it, and later
// ones, go to the app.
func (f *Refresh) Done(now time.Time) {
	c, e := f.c, f.e
	c.mu.Lock()
	defer c.mu.Unlock()
	close(e.refreshing)
	e.refreshing = nil
	if e.elem != nil && now.Sub(e.stored) >= e.ttl {
		c.remove(e)
	}
}

// Storable reports whether a response with this status and these headers
// may be stored: it is the decision made before the body is recorded.
// control holds the X-WSGo-* headers, which the client never sees.
func (c *Cache) Storable(status int, header, control http.Header) bool {
	_, _, ok := c.policy(status, header, control)
	return ok
}

// policy gives how long a response may be kept and the request headers it
// varies on, or false when it must not be stored: a 5xx, a partial or
// not-modified answer, one that sets a cookie, says no-store, no-cache or
// private, has no max-age, or varies on everything.
func (c *Cache) policy(status int, header, control http.Header) (time.Duration, []string, bool) {
	if status >= 500 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return 0, nil, false
	}
	if _, ok := header["Set-Cookie"]; ok {
		return 0, nil, false
	}
	ttl, ok := freshness(header["Cache-Control"])
	if !ok {
		return 0, nil, false
	}
	vary := headerList(header["Vary"])
	for i, name := range vary {
		if name == "*" {
			return 0, nil, false
		}
		vary[i] = http.CanonicalHeaderKey(name)
	}
	return min(ttl, c.maxAge), vary, true
}

// freshness reads Cache-Control: the lifetime a shared cache may give the
// response (s-maxage over max-age), and false when there is none or the
// response forbids storing it.
func freshness(values []string) (time.Duration, bool) {
	maxAge, shared := -1, -1
	for _, d := range headerList(values) {
		name, arg, _ := strings.Cut(d, "=")
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "no-store", "no-cache", "private":
			return 0, false
		case "max-age":
			maxAge = seconds(arg)
		case "s-maxage":
			shared = seconds(arg)
		}
	}
	if shared >= 0 {
		maxAge = shared
	}
	if maxAge <= 0 {
		return 0, false
	}
	return time.Duration(maxAge) * time.Second, true
}

func seconds(arg string) int {
	n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(arg), `"`))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// headerList splits comma-separated header values into trimmed items.
func headerList(values []string) []string {
	var items []string
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
	}
	return items
}

// hopByHop are response headers that belong to one connection and are
// never stored.
var hopByHop = []string{"Connection", "Keep-Alive", "Transfer-Encoding", "Age", "Date"}

// Store keeps the response the app gave to r, when its headers allow it.
func (c *Cache) Store(r *http.Request, status int, header, control http.Header, body []byte, now time.Time) {
	if len(body) > MaxBody || r.Method == http.MethodHead {
		return
	}
	ttl, vary, ok := c.policy(status, header, control)
	if !ok {
		return
	}
	e := &entry{status: status, header: header.Clone(), body: body, stored: now, ttl: ttl, vary: vary}
	for _, h := range hopByHop {
		delete(e.header, h)
	}
	e.header["Content-Length"] = []string{strconv.Itoa(len(body))}
	if cookies := headerList(control["X-Wsgo-Vary-Cookies"]); len(cookies) > 0 {
		e.cookies = cookies
	}
	e.values = make([]string, len(vary))
	for i, name := range vary {
		e.values[i] = varyValue(r, name, e.cookies)
	}
	e.size = int64(len(body)) + headerSize(e.header) + 256 // the entry's own bookkeeping, roughly
	if e.size > c.limit {
		return
	}

	k := key(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	res := c.resources[k]
	if res == nil {
		res = &resource{key: k}
		c.resources[k] = res
	}
	old := res.find(r)
	e.res = res
	res.variants = append(res.variants, e)
	e.elem = c.lru.PushFront(e)
	c.size += e.size
	if old != nil {
		// A refresh of the old entry stays open: its Done closes the old
		// entry's channel, wherever the entry is by then.
		c.remove(old)
	}
	for c.size > c.limit {
		c.remove(c.lru.Back().Value.(*entry))
	}
}

// remove takes e out of the cache. c.mu is held.
func (c *Cache) remove(e *entry) {
	if e.elem == nil {
		return
	}
	c.lru.Remove(e.elem)
	e.elem = nil
	c.size -= e.size
	res := e.res
	for i, v := range res.variants {
		if v == e {
			res.variants = append(res.variants[:i], res.variants[i+1:]...)
			break
		}
	}
	if len(res.variants) == 0 {
		delete(c.resources, res.key)
	}
}

func headerSize(h http.Header) int64 {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return int64(n)
}

// Serve writes the stored response to w, with its Age; a HEAD gets no body,
// and a request whose If-None-Match names the stored ETag gets 304. It
// returns the status and body bytes sent.
func (h *Hit) Serve(w http.ResponseWriter, r *http.Request, now time.Time) (int, int64) {
	e := h.e
	out := w.Header()
	for k, v := range e.header {
		out[k] = v // stored slices are never appended to in place: Clone caps them
	}
	out["Age"] = []string{strconv.FormatInt(int64(now.Sub(e.stored)/time.Second), 10)}
	if etag := e.header["Etag"]; len(etag) == 1 && e.status == http.StatusOK && matchesETag(r.Header["If-None-Match"], etag[0]) {
		delete(out, "Content-Length")
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified, 0
	}
	w.WriteHeader(e.status)
	if r.Method == http.MethodHead {
		return e.status, 0
	}
	n, _ := w.Write(e.body)
	return e.status, int64(n)
}

// matchesETag applies If-None-Match's weak comparison.
func matchesETag(values []string, etag string) bool {
	strip := func(t string) string { return strings.TrimPrefix(t, "W/") }
	for _, t := range headerList(values) {
		if t == "*" || strip(t) == strip(etag) {
			return true
		}
	}
	return false
}
