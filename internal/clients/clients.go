// Package clients is what a worker process knows of the clients it serves:
// who a request comes from (the socket peer, or the address a trusted
// proxy forwarded), how many of its requests are in flight and how many it
// made lately, the priority that gives its next request, and whether it
// is blocked.
//
// It holds no requests and makes no decisions about running them: the
// front asks it who a client is and whether it is blocked, and the
// scheduler asks it, through the front's priority function, how a queued
// request ranks.
package clients

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The priority arithmetic of the spec, in one place. A request's priority
// is computed again each time a worker takes a request, so that requests
// already queued sink as their client sends more.
const (
	// BasePriority is where every request starts.
	BasePriority = 1000
	// QueryPenalty applies to a request with a query string: search and
	// filter pages cost more and are what crawlers repeat.
	QueryPenalty = 500
	// ConcurrencyPenalty applies for each other request of the same client
	// queued or running.
	ConcurrencyPenalty = 2000
	// HistoryPenalty applies for each request the client completed, and
	// decays by HistoryDecay per second.
	HistoryPenalty = 1000
	HistoryDecay   = 1000
	// BotPenalty applies to a User-Agent containing bot, crawler, spider
	// or index.
	BotPenalty = 8000
	// BackgroundPriority: a request ranked below it runs only when no
	// worker is busy. With the penalties above, a sixth concurrent request
	// of one client falls below it.
	BackgroundPriority = -7000
)

// Registry tracks the clients of one process.
type Registry struct {
	trusted []netip.Prefix

	mu      sync.Mutex
	clients map[netip.Addr]*Client
	gets    int // since the last sweep
}

// Client is one client: an IPv4 address, or an IPv6 /64.
type Client struct {
	Addr netip.Addr
	// Public is false for loopback, private and link-local addresses,
	// whose requests are never demoted for their client's behaviour: a
	// health check, a benchmark or an internal service is not a crawler.
	Public bool

	inflight atomic.Int32

	mu      sync.Mutex
	history float64 // penalty points at historyAt
	// historyAt is when history was last brought up to date.
	historyAt time.Time
	block     *block
}

// New returns a registry believing X-Forwarded-For and X-Forwarded-Proto
// from peers in trusted.
func New(trusted []netip.Prefix) *Registry {
	return &Registry{trusted: trusted, clients: map[netip.Addr]*Client{}}
}

// privateRanges are what the word "private" adds to --trusted-proxies.
var privateRanges = []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"}

// ParseTrusted reads --trusted-proxies: CIDR prefixes or bare addresses,
// and the word "private" for the private ranges. Loopback is always
// trusted.
func ParseTrusted(list []string) ([]netip.Prefix, error) {
	out := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, item := range list {
		for s := range strings.SplitSeq(item, ",") {
			s = strings.TrimSpace(s)
			switch {
			case s == "":
			case s == "private":
				for _, p := range privateRanges {
					out = append(out, netip.MustParsePrefix(p))
				}
			case strings.Contains(s, "/"):
				p, err := netip.ParsePrefix(s)
				if err != nil {
					return nil, err
				}
				out = append(out, p.Masked())
			default:
				a, err := netip.ParseAddr(s)
				if err != nil {
					return nil, err
				}
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	return out, nil
}

func (reg *Registry) isTrusted(a netip.Addr) bool {
	for _, p := range reg.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Identify finds the client address and scheme of r. The peer is the
// client, unless it is a trusted proxy: then the client is the right-most
// X-Forwarded-For hop that is not itself trusted, and X-Forwarded-Proto
// gives the scheme. When the client is not the peer, r.RemoteAddr is
// rewritten to it, so that REMOTE_ADDR and the access log show it.
func (reg *Registry) Identify(r *http.Request) (netip.Addr, string) {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, scheme
	}
	addr := peer.Addr().Unmap()
	if !reg.isTrusted(addr) {
		return addr, scheme
	}
	if proto := r.Header["X-Forwarded-Proto"]; len(proto) > 0 {
		switch p, _, _ := strings.Cut(proto[0], ","); strings.ToLower(strings.TrimSpace(p)) {
		case "https":
			scheme = "https"
		case "http":
			scheme = "http"
		}
	}
	forwarded := r.Header["X-Forwarded-For"]
	if len(forwarded) == 0 {
		return addr, scheme
	}
	client := addr
	for i := len(forwarded) - 1; i >= 0; i-- {
		hops := forwarded[i]
		for hops != "" {
			var hop string
			if j := strings.LastIndexByte(hops, ','); j >= 0 {
				hops, hop = hops[:j], hops[j+1:]
			} else {
				hops, hop = "", hops
			}
			a, ok := parseHop(hop)
			if !ok {
				return reg.rewrite(r, client, peer), scheme // a hop we cannot read ends the chain
			}
			client = a
			if !reg.isTrusted(a) {
				return reg.rewrite(r, client, peer), scheme
			}
		}
	}
	return reg.rewrite(r, client, peer), scheme
}

// parseHop reads one X-Forwarded-For item: an address, possibly with a
// port, possibly bracketed.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

func (reg *Registry) rewrite(r *http.Request, client netip.Addr, peer netip.AddrPort) netip.Addr {
	if client != peer.Addr().Unmap() {
		r.RemoteAddr = net.JoinHostPort(client.String(), strconv.Itoa(int(peer.Port())))
	}
	return client
}

// keyOf groups addresses as the spec does: IPv4 by address, IPv6 by /64.
func keyOf(a netip.Addr) netip.Addr {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// sweepEvery is how many lookups pass between sweeps of idle clients.
const sweepEvery = 4096

// Get returns the client for addr, creating it.
func (reg *Registry) Get(addr netip.Addr, now time.Time) *Client {
	k := keyOf(addr)
	reg.mu.Lock()
	defer reg.mu.Unlock()
	c := reg.clients[k]
	if c == nil {
		c = &Client{Addr: k, Public: addr.IsValid() && !(addr.IsLoopback() || addr.IsPrivate() ||
			addr.IsLinkLocalUnicast() || addr.IsUnspecified())}
		reg.clients[k] = c
	}
	if reg.gets++; reg.gets >= sweepEvery {
		reg.gets = 0
		reg.sweepLocked(now)
	}
	return c
}

// sweepLocked forgets clients with nothing in flight, no history left and
// no block, so that a flood from many addresses does not stay in memory.
func (reg *Registry) sweepLocked(now time.Time) {
	for k, c := range reg.clients {
		c.mu.Lock()
		idle := c.inflight.Load() == 0 && c.block == nil && c.historyLocked(now) == 0
		c.mu.Unlock()
		if idle {
			delete(reg.clients, k)
		}
	}
}

// Start notes a request of c on its way to the app.
func (c *Client) Start() { c.inflight.Add(1) }

// Finish notes the end of a request begun with Start, which from now on
// counts in the client's history.
func (c *Client) Finish(now time.Time) {
	c.inflight.Add(-1)
	if !c.Public {
		return
	}
	c.mu.Lock()
	c.history = c.historyLocked(now) + HistoryPenalty
	c.historyAt = now
	c.mu.Unlock()
}

// historyLocked is the history penalty decayed to now.
func (c *Client) historyLocked(now time.Time) float64 {
	h := c.history - HistoryDecay*now.Sub(c.historyAt).Seconds()
	return max(h, 0)
}

// BaseOf is the part of a request's priority that does not change while
// it waits: the query string, and for a public client a bot User-Agent.
func BaseOf(r *http.Request, c *Client) int {
	p := BasePriority
	if r.URL.RawQuery != "" {
		p -= QueryPenalty
	}
	if c.Public && isBot(r.Header["User-Agent"]) {
		p -= BotPenalty
	}
	return p
}

// Priority ranks a queued request of c with the given base, now.
func (c *Client) Priority(base int, now time.Time) int {
	if !c.Public {
		return base
	}
	others := int(c.inflight.Load()) - 1
	c.mu.Lock()
	history := c.historyLocked(now)
	c.mu.Unlock()
	return base - ConcurrencyPenalty*max(others, 0) - int(history)
}

// isBot reports whether a User-Agent names itself a robot.
func isBot(ua []string) bool {
	if len(ua) == 0 {
		return false
	}
	for _, word := range []string{"bot", "crawler", "spider", "index"} {
		if containsFold(ua[0], word) {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lower-case ASCII word, in
// any case, without allocating.
func containsFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		j := 0
		for ; j < len(word); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != word[j] {
				break
			}
		}
		if j == len(word) {
			return true
		}
	}
	return false
}
