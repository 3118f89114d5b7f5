package clients

import (
	"bytes"
	"crypto/tls"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseTrusted(t *testing.T) {
	got, err := ParseTrusted([]string{" 10.1.2.3/16, 192.0.2.1 ", "", "2001:db8::1/32", "private,::2"})
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, p := range got {
		s = append(s, p.String())
	}
	want := "127.0.0.0/8 ::1/128 10.1.0.0/16 192.0.2.1/32 2001:db8::/32 " +
		"10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 fc00::/7 ::2/128"
	if strings.Join(s, " ") != want {
		t.Errorf("ParseTrusted = %s\nwant          %s", strings.Join(s, " "), want)
	}
	// Nothing given: loopback only.
	if got, err := ParseTrusted(nil); err != nil || len(got) != 2 {
		t.Errorf("ParseTrusted(nil) = %v, %v; want the two loopback prefixes", got, err)
	}
	for _, bad := range []string{"nonsense", "10.0.0.0/33", "1.2.3.4.5", "::1/129", "10.0.0.0/x"} {
		if _, err := ParseTrusted([]string{bad}); err == nil {
			t.Errorf("ParseTrusted(%q) accepted it", bad)
		}
	}
}

func TestIdentify(t *testing.T) {
	loopback, _ := ParseTrusted(nil)
	private, _ := ParseTrusted([]string{"private"})
	for _, tc := range []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		proto   string
		tls     bool
		// What Identify returns, and RemoteAddr after it.
		addr, scheme, remote2 string
	}{
		{name: "IPv4 peer", trusted: loopback, remote: "203.0.113.5:4000",
			addr: "203.0.113.5", scheme: "http", remote2: "203.0.113.5:4000"},
		{name: "IPv6 peer", trusted: loopback, remote: "[2001:db8::1]:5000",
			addr: "2001:db8::1", scheme: "http", remote2: "[2001:db8::1]:5000"},
		{name: "IPv4-mapped peer", trusted: loopback, remote: "[::ffff:203.0.113.5]:80",
			addr: "203.0.113.5", scheme: "http", remote2: "[::ffff:203.0.113.5]:80"},
		{name: "untrusted peer's headers ignored", trusted: loopback, remote: "203.0.113.9:1234",
			xff: []string{"198.51.100.1"}, proto: "https",
			addr: "203.0.113.9", scheme: "http", remote2: "203.0.113.9:1234"},
		{name: "private peer untrusted by default", trusted: loopback, remote: "10.0.0.5:1234",
			xff: []string{"198.51.100.1"}, proto: "https",
			addr: "10.0.0.5", scheme: "http", remote2: "10.0.0.5:1234"},
		{name: "private peer trusted with private", trusted: private, remote: "10.0.0.5:1234",
			xff: []string{"198.51.100.1"}, proto: "https",
			addr: "198.51.100.1", scheme: "https", remote2: "198.51.100.1:1234"},
		{name: "TLS", trusted: loopback, remote: "203.0.113.9:1234", tls: true,
			addr: "203.0.113.9", scheme: "https", remote2: "203.0.113.9:1234"},
		{name: "loopback without headers", trusted: loopback, remote: "127.0.0.1:1",
			addr: "127.0.0.1", scheme: "http", remote2: "127.0.0.1:1"},
		{name: "forwarded", trusted: loopback, remote: "127.0.0.1:1", xff: []string{"198.51.100.1"}, proto: "https",
			addr: "198.51.100.1", scheme: "https", remote2: "198.51.100.1:1"},
		{name: "forwarded through IPv6 loopback", trusted: loopback, remote: "[::1]:7", xff: []string{"2001:db8::5"},
			addr: "2001:db8::5", scheme: "http", remote2: "[2001:db8::5]:7"},
		{name: "right-most untrusted hop", trusted: loopback, remote: "127.0.0.1:1", xff: []string{"203.0.113.5, 10.1.2.3"},
			addr: "10.1.2.3", scheme: "http", remote2: "10.1.2.3:1"},
		{name: "trusted hops passed over", trusted: private, remote: "127.0.0.1:1", xff: []string{"203.0.113.5, 10.1.2.3", "127.0.0.3"},
			addr: "203.0.113.5", scheme: "http", remote2: "203.0.113.5:1"},
		{name: "every hop trusted", trusted: private, remote: "127.0.0.1:1", xff: []string{"10.0.0.1, 10.0.0.2"},
			addr: "10.0.0.1", scheme: "http", remote2: "10.0.0.1:1"},
		{name: "unreadable hop ends the chain", trusted: private, remote: "127.0.0.1:1", xff: []string{"203.0.113.5, unknown, 10.1.2.3"},
			addr: "10.1.2.3", scheme: "http", remote2: "10.1.2.3:1"},
		{name: "empty hop ends the chain", trusted: private, remote: "127.0.0.1:1", xff: []string{"203.0.113.5,,10.1.2.3"},
			addr: "10.1.2.3", scheme: "http", remote2: "10.1.2.3:1"},
		{name: "unreadable right-most hop", trusted: loopback, remote: "127.0.0.1:9", xff: []string{"_hidden"},
			addr: "127.0.0.1", scheme: "http", remote2: "127.0.0.1:9"},
		{name: "hop with port", trusted: loopback, remote: "127.0.0.1:1", xff: []string{" 203.0.113.5:8080 "},
			addr: "203.0.113.5", scheme: "http", remote2: "203.0.113.5:1"},
		{name: "bracketed IPv6 hop with port", trusted: loopback, remote: "127.0.0.1:1", xff: []string{"[2001:db8::7]:443"},
			addr: "2001:db8::7", scheme: "http", remote2: "[2001:db8::7]:1"},
		{name: "mapped hop", trusted: loopback, remote: "127.0.0.1:1", xff: []string{"::ffff:198.51.100.2"},
			addr: "198.51.100.2", scheme: "http", remote2: "198.51.100.2:1"},
		{name: "proto list", trusted: loopback, remote: "127.0.0.1:1", proto: " HTTPS , http",
			addr: "127.0.0.1", scheme: "https", remote2: "127.0.0.1:1"},
		{name: "unknown proto", trusted: loopback, remote: "127.0.0.1:1", proto: "wss",
			addr: "127.0.0.1", scheme: "http", remote2: "127.0.0.1:1"},
		{name: "unreadable peer", trusted: loopback, remote: "@",
			addr: "invalid IP", scheme: "http", remote2: "@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}, URL: &url.URL{Path: "/"}}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.proto != "" {
				r.Header.Set("X-Forwarded-Proto", tc.proto)
			}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			addr, scheme := New(tc.trusted).Identify(r)
			if addr.String() != tc.addr || scheme != tc.scheme || r.RemoteAddr != tc.remote2 {
				t.Errorf("Identify = %s, %s with RemoteAddr %q; want %s, %s with RemoteAddr %q",
					addr, scheme, r.RemoteAddr, tc.addr, tc.scheme, tc.remote2)
			}
		})
	}
}

// TestClientGrouping: IPv4 clients are addresses, IPv6 clients /64s; only
// public addresses are public.
func TestClientGrouping(t *testing.T) {
	reg := New(nil)
	now := time.Now()
	get := func(s string) *Client { return reg.Get(netip.MustParseAddr(s), now) }

	a, b := get("2001:db8:1:2::1"), get("2001:db8:1:2:ffff:ffff:ffff:ffff")
	if a != b || a.Addr.String() != "2001:db8:1:2::" {
		t.Errorf("two addresses of one /64: clients %p (%s) and %p (%s); want one, 2001:db8:1:2::", a, a.Addr, b, b.Addr)
	}
	if c := get("2001:db8:1:3::1"); c == a {
		t.Error("two /64s share a client")
	}
	x, y := get("203.0.113.1"), get("203.0.113.2")
	if x == y || x.Addr.String() != "203.0.113.1" {
		t.Errorf("IPv4 clients: %s and %s, want one per address", x.Addr, y.Addr)
	}
	if x != get("203.0.113.1") {
		t.Error("a second lookup made a new client")
	}
	for addr, public := range map[string]bool{
		"203.0.113.1": true, "2001:db8:1:2::1": true, "8.8.8.8": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"fd00::1": false, "169.254.1.1": false, "fe80::1": false, "0.0.0.0": false, "::": false,
	} {
		if c := get(addr); c.Public != public {
			t.Errorf("client %s: Public = %v, want %v", addr, c.Public, public)
		}
	}
	if c := reg.Get(netip.Addr{}, now); c.Public {
		t.Error("the client of an unreadable address is public")
	}
}

func TestIsBot(t *testing.T) {
	for ua, bot := range map[string]bool{
		"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)": true,
		"Mozilla/5.0 (compatible; bingbot/2.0)":                                    true,
		"Baiduspider-image+(+http://www.baidu.com/search/spider.htm)":              true,
		"SomeCRAWLER/1.0": true,
		"IndexNow":        true,
		"ROBOT":           true,
		"Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0": false,
		"curl/8.0":    false,
		"":            false,
		"bo t":        false,
		"craw":        false,
		"facebookhit": false,
	} {
		if got := isBot([]string{ua}); got != bot {
			t.Errorf("isBot(%q) = %v, want %v", ua, got, bot)
		}
	}
	if isBot(nil) {
		t.Error("isBot(no User-Agent) = true")
	}
	// Only the first User-Agent line counts.
	if isBot([]string{"Firefox", "Googlebot"}) {
		t.Error("a second User-Agent line counted")
	}
}

func TestContainsFold(t *testing.T) {
	for _, tc := range []struct {
		s, word string
		want    bool
	}{
		{"bot", "bot", true},
		{"BOT", "bot", true},
		{"xxBoTxx", "bot", true},
		{"robo", "bot", false},
		{"bo", "bot", false},
		{"", "bot", false},
		{"spidEr", "spider", true},
		{"spide", "spider", false},
		{"sp1der", "spider", false},
		{"BBOT", "bot", true},
		{"ÄBOT", "bot", true},
		{"\xe2\x84\xaabot", "bot", true}, // non-ASCII bytes around the word
		{"b\xc3\xb6t", "bot", false},
		{"INDEX", "index", true},
		{"[index]", "index", true},
	} {
		if got := containsFold(tc.s, tc.word); got != tc.want {
			t.Errorf("containsFold(%q, %q) = %v, want %v", tc.s, tc.word, got, tc.want)
		}
	}
	found := false
	if n := testing.AllocsPerRun(100, func() { found = containsFold("Mozilla/5.0 (compatible; YandexBot/3.0)", "bot") }); n != 0 || !found {
		t.Errorf("containsFold allocates %v times (found %v)", n, found)
	}
}

func TestBaseOf(t *testing.T) {
	reg := New(nil)
	now := time.Now()
	public := reg.Get(netip.MustParseAddr("203.0.113.1"), now)
	private := reg.Get(netip.MustParseAddr("10.0.0.1"), now)
	req := func(rawQuery, ua string) *http.Request {
		r := &http.Request{URL: &url.URL{Path: "/", RawQuery: rawQuery}, Header: http.Header{}}
		if ua != "" {
			r.Header.Set("User-Agent", ua)
		}
		return r
	}
	for _, tc := range []struct {
		r    *http.Request
		c    *Client
		want int
	}{
		{req("", "Firefox"), public, 1000},
		{req("q=1", "Firefox"), public, 500},
		{req("", "Googlebot"), public, -7000},
		{req("q=1", "Googlebot"), public, -7500},
		{req("", ""), public, 1000},
		{req("", "Googlebot"), private, 1000},
		{req("q=1", "Googlebot"), private, 500}, // the query string costs anyone
	} {
		if got := BaseOf(tc.r, tc.c); got != tc.want {
			t.Errorf("BaseOf(?%s, UA %q, client %s) = %d, want %d",
				tc.r.URL.RawQuery, tc.r.UserAgent(), tc.c.Addr, got, tc.want)
		}
	}
}

// TestPriority: −2000 for each other request in flight, −1000 for each
// completed request decaying by 1000 a second; none of it for a client
// that is not public.
func TestPriority(t *testing.T) {
	reg := New(nil)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	c := reg.Get(netip.MustParseAddr("203.0.113.1"), t0)

	check := func(what string, now time.Time, want int) {
		t.Helper()
		if got := c.Priority(BasePriority, now); got != want {
			t.Errorf("%s: Priority = %d, want %d", what, got, want)
		}
	}
	check("no request in flight", t0, 1000) // (a queued request counts itself)
	c.Start()
	check("one request in flight", t0, 1000)
	c.Start()
	c.Start()
	check("three in flight", t0, 1000-2*2000)

	c.Finish(at(0))
	c.Finish(at(0))
	check("one in flight, two completed just now", at(0), 1000-2000)
	check("250 ms later", at(250), 1000-1750)
	c.Finish(at(500)) // 1500 left, plus 1000
	check("none in flight, three completed", at(500), 1000-2500)
	check("1 s later", at(1500), 1000-1500)
	check("2 s later", at(2500), 1000-500)
	check("3 s later", at(3500), 1000)
	check("long after", at(60000), 1000)
	c.Start()
	c.Finish(at(60000))
	check("after one more, the history starts afresh", at(60000), 0)
	check("and decays", at(60600), 600)

	// Priorities below the background line: a sixth concurrent request,
	// a robot with a query string; a robot alone is just at the line.
	for i := 0; i < 6; i++ {
		c.Start()
	}
	if p := c.Priority(BasePriority, at(70000)); p >= BackgroundPriority {
		t.Errorf("with six in flight Priority = %d, want below %d", p, BackgroundPriority)
	}
	c.Finish(at(70000))
	if p := c.Priority(BasePriority, at(80000)); p < BackgroundPriority {
		t.Errorf("with five in flight Priority = %d, want at least %d", p, BackgroundPriority)
	}
	if p := BasePriority - BotPenalty; p < BackgroundPriority {
		t.Errorf("a robot's base %d is below the background line %d", p, BackgroundPriority)
	}
	if p := BasePriority - BotPenalty - QueryPenalty; p >= BackgroundPriority {
		t.Errorf("a robot's search ranks %d, want below the background line %d", p, BackgroundPriority)
	}

	// A client that is not public keeps its base, and gathers no history.
	lo := reg.Get(netip.MustParseAddr("127.0.0.1"), t0)
	for i := 0; i < 5; i++ {
		lo.Start()
	}
	lo.Finish(at(0))
	if got := lo.Priority(BasePriority-QueryPenalty, at(0)); got != 500 {
		t.Errorf("loopback client: Priority = %d, want its base 500", got)
	}
	lo.mu.Lock()
	h := lo.history
	lo.mu.Unlock()
	if h != 0 {
		t.Errorf("loopback client gathered history %v", h)
	}
}

// TestSweep: a sweep forgets the clients with nothing in flight, no history
// left and no block, and Get sweeps every sweepEvery lookups.
func TestSweep(t *testing.T) {
	reg := New(nil)
	b := NewBlocker(slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	t0 := time.Now()
	get := func(s string) *Client { return reg.Get(netip.MustParseAddr(s), t0) }
	get("203.0.113.1") // idle
	get("10.0.0.1")    // idle, private
	busy := get("203.0.113.2")
	busy.Start()
	recent := get("203.0.113.3")
	recent.Start()
	recent.Finish(t0)
	blocked := get("203.0.113.4")
	b.Block(blocked, time.Hour, t0)
	defer stopBlock(blocked)

	names := func() string {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		var n []string
		for k := range reg.clients {
			n = append(n, k.String())
		}
		slices.Sort(n)
		return strings.Join(n, " ")
	}
	sweep := func(now time.Time) {
		reg.mu.Lock()
		reg.sweepLocked(now)
		reg.mu.Unlock()
	}
	sweep(t0.Add(500 * time.Millisecond))
	if got, want := names(), "203.0.113.2 203.0.113.3 203.0.113.4"; got != want {
		t.Errorf("after a sweep: %s, want %s", got, want)
	}
	sweep(t0.Add(1500 * time.Millisecond)) // the history is gone
	if got, want := names(), "203.0.113.2 203.0.113.4"; got != want {
		t.Errorf("after the history decayed: %s, want %s", got, want)
	}
	busy.Finish(t0)
	sweep(t0.Add(time.Hour)) // the busy client's history decayed too
	if got, want := names(), "203.0.113.4"; got != want {
		t.Errorf("once nothing is in flight: %s, want %s", got, want)
	}

	// Get sweeps by itself every sweepEvery lookups.
	reg.Get(netip.MustParseAddr("198.51.100.1"), t0.Add(time.Hour))
	for i := 0; i < sweepEvery; i++ {
		reg.Get(blocked.Addr, t0.Add(time.Hour))
	}
	if got, want := names(), "203.0.113.4"; got != want {
		t.Errorf("after %d lookups: %s, want %s", sweepEvery, got, want)
	}
}

// stopBlock stops the timer of c's block, if any, so that a test does not
// leave it behind.
func stopBlock(c *Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.block != nil {
		c.block.timer.Stop()
	}
}

// syncBuffer is a log destination the block timers may write to while the
// test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLog waits (bounded) until the log holds substr.
func waitLog(t *testing.T, log *syncBuffer, substr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(log.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("%q not logged within 5s; log:\n%s", substr, log.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBlock(t *testing.T) {
	var log syncBuffer
	b := NewBlocker(slog.New(slog.NewTextHandler(&log, nil)))
	reg := New(nil)
	c := reg.Get(netip.MustParseAddr("203.0.113.1"), time.Now())
	other := reg.Get(netip.MustParseAddr("203.0.113.2"), time.Now())

	start := time.Now()
	if _, blocked := b.Blocked(c, start); blocked {
		t.Fatal("blocked before any block")
	}
	b.Block(c, 200*time.Millisecond, start)
	waitLog(t, &log, `msg="client blocked" client=203.0.113.1 seconds=0.2`)
	delay, blocked := b.Blocked(c, start.Add(50*time.Millisecond))
	if !blocked || delay != 150*time.Millisecond {
		t.Errorf("Blocked 50 ms into a 200 ms block = %v, %v; want true with the 150 ms left", delay, blocked)
	}
	b.Release()
	if _, blocked := b.Blocked(other, start); blocked {
		t.Error("another client is blocked")
	}
	// Past the end the client is not blocked, even before the timer ran.
	if _, blocked := b.Blocked(c, start.Add(200*time.Millisecond)); blocked {
		t.Error("blocked at the end of its block")
	}
	waitLog(t, &log, `msg="client block ended" client=203.0.113.1 refused=1`)
	if _, blocked := b.Blocked(c, time.Now()); blocked {
		t.Error("blocked after the block ended")
	}
	if b.held.Load() != 0 {
		t.Errorf("%d answers still counted as held", b.held.Load())
	}
}

// TestBlockExtended: a longer block extends one in place, a shorter one
// does not shorten it; the end is logged once, with every refusal.
func TestBlockExtended(t *testing.T) {
	var log syncBuffer
	b := NewBlocker(slog.New(slog.NewTextHandler(&log, nil)))
	c := New(nil).Get(netip.MustParseAddr("203.0.113.1"), time.Now())
	start := time.Now()
	b.Block(c, 50*time.Millisecond, start)
	b.Block(c, 300*time.Millisecond, start)
	b.Block(c, 10*time.Millisecond, start)
	if _, blocked := b.Blocked(c, start.Add(100*time.Millisecond)); !blocked {
		t.Error("not blocked within the extended block")
	}
	if delay, blocked := b.Blocked(c, start.Add(250*time.Millisecond)); !blocked || delay != 50*time.Millisecond {
		t.Errorf("Blocked 250 ms into the extended block = %v, %v; want true with 50 ms left", delay, blocked)
	}
	b.Release()
	b.Release()
	// Wait well past the first block's end; the extended block may not
	// have ended before 300 ms.
	waitLog(t, &log, `msg="client block ended"`)
	if since := time.Since(start); since < 300*time.Millisecond {
		t.Errorf("the extended block ended %v after it began, want 300ms", since)
	}
	time.Sleep(100 * time.Millisecond) // a second end line would follow at once
	if n := strings.Count(log.String(), "client block ended"); n != 1 {
		t.Errorf("the block end was logged %d times:\n%s", n, log.String())
	}
	if n := strings.Count(log.String(), `msg="client blocked"`); n != 1 {
		t.Errorf("the block start was logged %d times:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), "refused=2") {
		t.Errorf("the block end does not count 2 refusals:\n%s", log.String())
	}
}

// TestBlockHolds: an answer is held for the rest of the block, at most
// MaxBlockDelay, and at most MaxHeld at once.
func TestBlockHolds(t *testing.T) {
	b := NewBlocker(slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	reg := New(nil)
	c := reg.Get(netip.MustParseAddr("203.0.113.1"), time.Now())
	d := reg.Get(netip.MustParseAddr("2001:db8::1"), time.Now())
	now := time.Now()
	b.Block(c, time.Hour, now)
	defer stopBlock(c)
	b.Block(d, time.Hour, now)
	defer stopBlock(d)
	for i := 0; i < MaxHeld; i++ {
		who := c
		if i%2 == 1 {
			who = d
		}
		if delay, blocked := b.Blocked(who, now); !blocked || delay != MaxBlockDelay {
			t.Fatalf("refusal %d: %v, %v; want held for MaxBlockDelay", i, delay, blocked)
		}
	}
	if delay, blocked := b.Blocked(c, now); !blocked || delay != 0 {
		t.Errorf("refusal beyond MaxHeld: %v, %v; want answered at once", delay, blocked)
	}
	if delay, blocked := b.Blocked(d, now); !blocked || delay != 0 {
		t.Errorf("refusal of another client beyond MaxHeld: %v, %v; want answered at once", delay, blocked)
	}
	b.Release()
	if delay, blocked := b.Blocked(c, now); !blocked || delay == 0 {
		t.Errorf("refusal after a release: %v, %v; want held", delay, blocked)
	}
	if got := b.held.Load(); got != MaxHeld {
		t.Errorf("held = %d, want %d", got, MaxHeld)
	}
	c.mu.Lock()
	refused := c.block.refused
	c.mu.Unlock()
	if refused != MaxHeld/2+2 {
		t.Errorf("client c's block counts %d refusals, want %d (held or not)", refused, MaxHeld/2+2)
	}
}
