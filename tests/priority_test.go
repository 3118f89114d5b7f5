package tests

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The tests of client identity, request priorities, the queue bound and
// blocking. They connect from 127.0.0.1, which wsgo always trusts as a
// proxy, so a test presents a client with X-Forwarded-For; public clients
// use the TEST-NET ranges (203.0.113.0/24, 198.51.100.0/24) and
// 2001:db8::/32, which wsgo treats as public addresses.
//
// The ranking tests run wsgo with one worker, hold it with a /gate request
// from loopback (a client never demoted), queue requests in a known order —
// each only once the worker process's SIGUSR2 report counts the one before
// it as queued — then free the worker and read the order in which the app
// was called.

// prioServer is a wsgo server on priorityapp, with the directory in which
// a test creates the file that frees a /gate request.
type prioServer struct {
	*server
	gates string
}

func startPrio(t *testing.T, args ...string) *prioServer {
	t.Helper()
	gates := t.TempDir()
	s := startServerEnv(t, []string{"PRIORITYAPP_GATES=" + gates}, "priorityapp", args...)
	return &prioServer{server: s, gates: gates}
}

// prioReply is the outcome of a request sent in the background.
type prioReply struct {
	status int
	body   string
	header http.Header
	took   time.Duration
	err    error
}

func (r prioReply) String() string {
	if r.err != nil {
		return "error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %q after %v", r.status, r.body, r.took.Round(time.Millisecond))
}

// clientHeader presents a client: X-Forwarded-For addr (none when addr is
// ""), and any further header name/value pairs.
func clientHeader(addr string, kv ...string) http.Header {
	h := http.Header{}
	if addr != "" {
		h.Set("X-Forwarded-For", addr)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// botUA is a crawler's User-Agent.
const botUA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

// request makes a GET of path with hdr on a connection of its own.
func (p *prioServer) request(path string, hdr http.Header) prioReply {
	req, err := http.NewRequest("GET", p.URL+path, nil)
	if err != nil {
		return prioReply{err: err}
	}
	for k, v := range hdr {
		req.Header[k] = append([]string(nil), v...)
	}
	start := time.Now()
	resp, err := freshClient(30 * time.Second).Do(req)
	if err != nil {
		return prioReply{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return prioReply{status: resp.StatusCode, body: string(body), header: resp.Header, took: time.Since(start), err: err}
}

// send starts request in the background.
func (p *prioServer) send(path string, hdr http.Header) <-chan prioReply {
	ch := make(chan prioReply, 1)
	go func() { ch <- p.request(path, hdr) }()
	return ch
}

// await waits (bounded) for a reply sent in the background.
func await(t *testing.T, what string, ch <-chan prioReply) prioReply {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("%s: no answer within %v", what, waitTimeout)
		return prioReply{}
	}
}

// wantOK fails the test unless r is a 200 with body.
func wantOK(t *testing.T, what string, r prioReply, body string) {
	t.Helper()
	if r.err != nil || r.status != 200 || r.body != body {
		t.Errorf("%s: got %v, want 200 %q", what, r, body)
	}
}

// hold sends /gate/NAME from loopback and waits until the app runs it, so
// that it holds a worker until open(NAME).
func (p *prioServer) hold(t *testing.T, name string) <-chan prioReply {
	t.Helper()
	ch := p.send("/gate/"+name, nil)
	t.Cleanup(func() { p.open(t, name) }) // so that a failed test does not leave it held
	p.WaitStderr(t, "priorityapp: gate "+name+" waiting")
	return ch
}

// open frees the /gate/NAME request.
func (p *prioServer) open(t *testing.T, name string) {
	if err := os.WriteFile(filepath.Join(p.gates, name), nil, 0o644); err != nil {
		t.Errorf("opening gate %s: %v", name, err)
	}
}

// queueLen asks the worker process (there is one) for its report and
// returns the queue length in it.
func (p *prioServer) queueLen(t *testing.T) int {
	t.Helper()
	mark := p.stdout.Len()
	p.Signal(t, syscall.SIGUSR2)
	return atoiOr(p.WaitStdoutMatches(t, mark, reportRE, 1)[0][7])
}

// waitQueued waits until n requests wait in the queue.
func (p *prioServer) waitQueued(t *testing.T, n int) {
	t.Helper()
	waitFor(t, waitTimeout, fmt.Sprintf("%d queued requests", n), func() bool { return p.queueLen(t) == n })
}

// enqueue sends a request that cannot run yet and waits until it is the
// n-th queued one, so that requests queued one after the other arrive in
// a known order.
func (p *prioServer) enqueue(t *testing.T, n int, path string, hdr http.Header) <-chan prioReply {
	t.Helper()
	ch := p.send(path, hdr)
	p.waitQueued(t, n)
	return ch
}

// order reads (and clears) the order in which /record requests ran.
func (p *prioServer) order(t *testing.T) string {
	t.Helper()
	r := get(t, p.URL+"/order")
	wantStatus(t, r, 200)
	return r.String()
}

// queuedReq is one request a ranking test queues: /record/TAG (plus
// query), with headers.
type queuedReq struct {
	tag, query string
	hdr        http.Header
}

// TestPriorityRanking: with the only worker held, requests queued in a
// known order run in the order of their priorities, ties in arrival
// order.
func TestPriorityRanking(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		reqs  []queuedReq // in the order they are queued
		order string      // in which they must run
	}{
		{
			// −500 for the query string: the search queued first runs
			// after the plain page queued after it.
			name: "query string",
			reqs: []queuedReq{
				{"search", "?q=shoes", clientHeader("203.0.113.1")},
				{"plain", "", clientHeader("203.0.113.2")},
			},
			order: "plain,search",
		},
		{
			// The query string costs loopback requests too: it is no
			// penalty for the client's behaviour.
			name: "query string from loopback",
			reqs: []queuedReq{
				{"search", "?q=shoes", nil},
				{"plain", "", nil},
			},
			order: "plain,search",
		},
		{
			// −8000 for a robot from a public address, in any case.
			name: "bot from a public address",
			reqs: []queuedReq{
				{"googlebot", "", clientHeader("203.0.113.3", "User-Agent", botUA)},
				{"crawler", "", clientHeader("203.0.113.4", "User-Agent", "SomeCRAWLER/1.0")},
				{"human", "", clientHeader("203.0.113.5", "User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")},
			},
			order: "human,googlebot,crawler",
		},
		{
			// A robot User-Agent from loopback or a private address (a
			// health check, a monitor) is not demoted: arrival order.
			name: "bot from loopback and a private address",
			reqs: []queuedReq{
				{"loopbackbot", "", clientHeader("", "User-Agent", botUA)},
				{"privatebot", "", clientHeader("10.0.0.7", "User-Agent", "index-spider/2")},
				{"human", "", clientHeader("203.0.113.6")},
			},
			order: "loopbackbot,privatebot,human",
		},
		{
			// −2000 for each other request of the client in flight, the
			// client being an IPv6 /64: the two requests from one /64
			// run after the one from another /64 queued between and after
			// them. The first one sank when the second arrived.
			name: "in flight, IPv6 /64",
			reqs: []queuedReq{
				{"x1", "", clientHeader("2001:db8:1:1::a")},
				{"y", "", clientHeader("2001:db8:1:2::1")},
				{"x2", "", clientHeader("2001:db8:1:1::b")},
			},
			order: "y,x1,x2",
		},
		{
			// The same for IPv4 addresses, and not across them.
			name: "in flight, IPv4",
			reqs: []queuedReq{
				{"a1", "", clientHeader("203.0.113.7")},
				{"a2", "", clientHeader("203.0.113.7")},
				{"b", "", clientHeader("203.0.113.8")},
				{"c", "", clientHeader("203.0.113.9")},
			},
			order: "b,c,a1,a2",
		},
		{
			// Loopback clients are never demoted for their concurrency.
			name: "in flight from loopback",
			reqs: []queuedReq{
				{"l1", "", nil},
				{"l2", "", nil},
				{"l3", "", nil},
				{"fresh", "", clientHeader("203.0.113.10")},
			},
			order: "l1,l2,l3,fresh",
		},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			t.Parallel()
			p := startPrio(t, "--workers", "1")
			gate := p.hold(t, "g")
			var replies []<-chan prioReply
			for i, r := range tc.reqs {
				replies = append(replies, p.enqueue(t, i+1, "/record/"+r.tag+r.query, r.hdr))
			}
			p.open(t, "g")
			wantOK(t, "the gate", await(t, "the gate", gate), "released g")
			for i, ch := range replies {
				wantOK(t, tc.reqs[i].tag, await(t, tc.reqs[i].tag, ch), tc.reqs[i].tag)
			}
			if got := p.order(t); got != tc.order {
				t.Errorf("the app ran %s, want %s", got, tc.order)
			}
		})
	}
}

// TestPriorityHistory: each request a public client completed costs its
// next ones 1000, decaying by 1000 a second. A client that has just made
// two requests is passed by fresh clients queued after it; one that made
// two requests more than two seconds ago ranks with fresh clients again.
func TestPriorityHistory(t *testing.T) {
	t.Parallel()
	p := startPrio(t, "--workers", "1")
	old, recent := clientHeader("203.0.113.20"), clientHeader("203.0.113.21")
	for i := 0; i < 2; i++ {
		if r := p.request("/", old); r.err != nil || r.status != 200 {
			t.Fatalf("earlier request of the old client: %v", r)
		}
	}
	// The history decays with time, so waiting is the behaviour under
	// test: after the second completion at most 2000 is left, gone 2 s
	// later (with a margin for the server's end of the request).
	time.Sleep(2300 * time.Millisecond)
	for i := 0; i < 2; i++ {
		if r := p.request("/", recent); r.err != nil || r.status != 200 {
			t.Fatalf("earlier request of the recent client: %v", r)
		}
	}
	// The recent client's history is about 2000 now; all that follows
	// must happen within the second or so that keeps it above 0 when the
	// worker takes its request (it takes a few hundred milliseconds).
	gate := p.hold(t, "g")
	reqs := []struct {
		tag string
		hdr http.Header
	}{
		{"recent", recent},
		{"fresh1", clientHeader("203.0.113.22")},
		{"old", old},
		{"fresh2", clientHeader("203.0.113.23")},
	}
	var replies []<-chan prioReply
	for i, r := range reqs {
		replies = append(replies, p.enqueue(t, i+1, "/record/"+r.tag, r.hdr))
	}
	p.open(t, "g")
	wantOK(t, "the gate", await(t, "the gate", gate), "released g")
	for i, ch := range replies {
		wantOK(t, reqs[i].tag, await(t, reqs[i].tag, ch), reqs[i].tag)
	}
	if got, want := p.order(t), "fresh1,old,fresh2,recent"; got != want {
		t.Errorf("the app ran %s, want %s", got, want)
	}
}

// TestPriorityBackground: a request ranked below −7000 runs only when no
// worker is busy. A public client's requests rank 1000 − 2000 for each of
// its other requests in flight: with five in flight they rank −7000 and
// run beside another busy worker; with six they rank −9000 and wait until
// no worker is busy.
func TestPriorityBackground(t *testing.T) {
	t.Parallel()
	p := startPrio(t, "--workers", "2")
	g0 := p.hold(t, "g0")
	g1 := p.hold(t, "g1")
	five, six := clientHeader("203.0.113.40"), clientHeader("203.0.113.41")
	n := 0
	var fives, sixes []<-chan prioReply
	for i := 1; i <= 5; i++ {
		n++
		fives = append(fives, p.enqueue(t, n, fmt.Sprintf("/record/five%d", i), five))
	}
	for i := 1; i <= 6; i++ {
		n++
		sixes = append(sixes, p.enqueue(t, n, fmt.Sprintf("/record/six%d", i), six))
	}
	n++
	fresh := p.enqueue(t, n, "/record/fresh", clientHeader("203.0.113.42"))

	// Free one worker while the other stays busy.
	p.open(t, "g1")
	wantOK(t, "gate g1", await(t, "gate g1", g1), "released g1")
	wantOK(t, "fresh", await(t, "fresh", fresh), "fresh")
	for i, ch := range fives {
		tag := fmt.Sprintf("five%d", i+1)
		wantOK(t, tag, await(t, tag, ch), tag)
	}
	// The freed worker has run everything it may; what it must not do is
	// take one of the six. Nothing announces that it did not, so give it
	// a moment after one more request (run on that worker, which then
	// looks at the queue again) before checking.
	wantStatus(t, get(t, p.URL+"/peek"), 200)
	time.Sleep(200 * time.Millisecond)
	if q := p.queueLen(t); q != 6 {
		t.Errorf("with one worker busy %d requests are queued, want the six", q)
	}
	if got, want := get(t, p.URL+"/peek").String(), "fresh,five1,five2,five3,five4,five5"; got != want {
		t.Errorf("with one worker busy the app ran %s, want %s", got, want)
	}
	for i, ch := range sixes {
		select {
		case r := <-ch:
			t.Errorf("six%d was answered while another worker was busy: %v", i+1, r)
		default:
		}
	}

	// Once no worker is busy, they run, one at a time.
	p.open(t, "g0")
	wantOK(t, "gate g0", await(t, "gate g0", g0), "released g0")
	for i, ch := range sixes {
		tag := fmt.Sprintf("six%d", i+1)
		wantOK(t, tag, await(t, tag, ch), tag)
	}
	if got, want := p.order(t), "fresh,five1,five2,five3,five4,five5,six1,six2,six3,six4,six5,six6"; got != want {
		t.Errorf("the app ran %s, want %s", got, want)
	}
}

// TestPriorityBackgroundTimeout: a background request that cannot start
// within --request-timeout, because another worker stays busy, gets 504
// without running.
func TestPriorityBackgroundTimeout(t *testing.T) {
	t.Parallel()
	p := startPrio(t, "--workers", "2", "--request-timeout", "2")
	// One worker sleeps in C for 3.5 s: the timeout's exception lands only
	// when the sleep returns (a 502 then); the other is held by a gate.
	busy := p.send("/sleep?s=3.5", nil)
	p.WaitStderr(t, "priorityapp: sleeping 3.5")
	g := p.hold(t, "g")
	bg := clientHeader("203.0.113.45")
	var six []<-chan prioReply
	for i := 1; i <= 6; i++ {
		six = append(six, p.enqueue(t, i, fmt.Sprintf("/record/six%d", i), bg))
	}
	p.open(t, "g")
	wantOK(t, "the gate", await(t, "the gate", g), "released g")
	for i, ch := range six {
		// Queued within a second of the sleep's start, they expire 2 s
		// later, before it ends.
		if r := await(t, fmt.Sprintf("six%d", i+1), ch); r.err != nil || r.status != 504 {
			t.Errorf("six%d: got %v, want 504", i+1, r)
		}
	}
	if r := await(t, "the sleep", busy); r.err != nil || r.status != 502 {
		t.Errorf("the sleep past the timeout: got %v, want 502", r)
	}
	if got := p.order(t); got != "" {
		t.Errorf("the app ran %s, want none of the expired requests", got)
	}
}

// TestQueueBound: with --queue-size 2 full, a new request pushes out the
// lowest ranked one, which may be itself: it gets 503 with Retry-After,
// without running, and is logged.
func TestQueueBound(t *testing.T) {
	t.Parallel()
	p := startPrio(t, "--workers", "1", "--queue-size", "2")
	gate := p.hold(t, "g")
	bot := p.enqueue(t, 1, "/record/bot", clientHeader("203.0.113.50", "User-Agent", botUA)) // −7000
	n1 := p.enqueue(t, 2, "/record/n1", clientHeader("203.0.113.51"))                        // 1000
	// The queue is full: n2 pushes out the robot.
	n2 := p.send("/record/n2", clientHeader("203.0.113.52"))
	wantShed := func(what string, ch <-chan prioReply) {
		t.Helper()
		r := await(t, what+" (want an immediate 503)", ch)
		if r.err != nil || r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Errorf("%s: got %v with Retry-After %q; want 503 with Retry-After", what, r, r.header.Get("Retry-After"))
		}
	}
	wantShed("the robot's request, pushed out", bot)
	p.waitQueued(t, 2)
	// A request with a query string (500) ranks below both queued ones
	// (1000): it is refused itself.
	wantShed("the search, lowest on arrival", p.send("/record/search?q=1", clientHeader("203.0.113.53")))
	// A request ranked like the lowest queued one loses to it: the newest
	// of equals goes.
	wantShed("a request ranked like the queued ones", p.send("/record/n3", clientHeader("203.0.113.54")))
	if q := p.queueLen(t); q != 2 {
		t.Errorf("%d requests queued after the refusals, want 2", q)
	}

	p.open(t, "g")
	wantOK(t, "the gate", await(t, "the gate", gate), "released g")
	wantOK(t, "n1", await(t, "n1", n1), "n1")
	wantOK(t, "n2", await(t, "n2", n2), "n2")
	if got, want := p.order(t), "n1,n2"; got != want {
		t.Errorf("the app ran %s, want %s", got, want)
	}
	shedRE := regexp.MustCompile(`(?m)^(203\.0\.113\.5[034]) - - \[[^]]*\] "GET (/record/\S+) HTTP/1\.1" 503 `)
	var shed []string
	for _, m := range p.WaitStdoutMatches(t, 0, shedRE, 3) {
		shed = append(shed, m[1]+" "+m[2])
	}
	if got, want := strings.Join(shed, ", "), "203.0.113.50 /record/bot, 203.0.113.53 /record/search?q=1, 203.0.113.54 /record/n3"; got != want {
		t.Errorf("access log lines with 503: %s, want %s", got, want)
	}
}

// TestClientForwardedFor: X-Forwarded-For and X-Forwarded-Proto are
// believed from trusted peers (loopback always, so the tests' own
// connections): the client is the right-most hop that is not itself a
// trusted proxy, a hop that cannot be read ends the chain, and REMOTE_ADDR,
// wsgi.url_scheme and the access log follow.
func TestClientForwardedFor(t *testing.T) {
	t.Parallel()
	type check struct {
		hdr  http.Header
		want string // REMOTE_ADDR wsgi.url_scheme
	}
	xff := func(hops ...string) http.Header {
		h := http.Header{}
		for _, hop := range hops {
			h.Add("X-Forwarded-For", hop)
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		args   []string
		checks []check
	}{
		{
			name: "default",
			checks: []check{
				{nil, "127.0.0.1 http"},
				{xff("203.0.113.5"), "203.0.113.5 http"},
				// 10.1.2.3 is not trusted by default: it is the client.
				{xff("203.0.113.5, 10.1.2.3"), "10.1.2.3 http"},
				// Loopback hops are trusted and passed over.
				{xff("203.0.113.5, 127.0.0.1"), "203.0.113.5 http"},
				// An unreadable hop ends the chain at the last hop read.
				{xff("203.0.113.5, unknown, 127.0.0.2"), "127.0.0.2 http"},
				{xff("unknown"), "127.0.0.1 http"},
				// Repeated headers are one list, the last one right-most.
				{xff("203.0.113.9", "198.51.100.9"), "198.51.100.9 http"},
				{xff("203.0.113.9, 127.0.0.1", "127.0.0.1"), "203.0.113.9 http"},
				// Ports, brackets and IPv4-mapped IPv6 addresses.
				{xff("203.0.113.5:8080"), "203.0.113.5 http"},
				{xff("[2001:db8::7]:443"), "2001:db8::7 http"},
				{xff("2001:db8::8"), "2001:db8::8 http"},
				{xff("::ffff:203.0.113.6"), "203.0.113.6 http"},
				{clientHeader("", "X-Forwarded-Proto", "https"), "127.0.0.1 https"},
				{clientHeader("203.0.113.5", "X-Forwarded-Proto", "HTTPS"), "203.0.113.5 https"},
				{clientHeader("", "X-Forwarded-Proto", "https, http"), "127.0.0.1 https"},
				{clientHeader("", "X-Forwarded-Proto", "ftp"), "127.0.0.1 http"},
			},
		},
		{
			name: "private",
			args: []string{"--trusted-proxies", "private"},
			checks: []check{
				{xff("203.0.113.5, 10.1.2.3"), "203.0.113.5 http"},
				{xff("203.0.113.5, 172.16.0.1, 192.168.1.1, 10.1.2.3"), "203.0.113.5 http"},
				{xff("203.0.113.5, bogus, 10.1.2.3"), "10.1.2.3 http"},
				// Every hop trusted: the left-most is the client.
				{xff("10.0.0.1, 10.0.0.2"), "10.0.0.1 http"},
			},
		},
		{
			name: "prefixes",
			args: []string{"--trusted-proxies", "10.1.0.0/16, 192.0.2.1", "--trusted-proxies=198.51.100.0/24"},
			checks: []check{
				{xff("203.0.113.5, 198.51.100.7, 192.0.2.1, 10.1.2.3"), "203.0.113.5 http"},
				{xff("203.0.113.5, 10.2.0.1"), "10.2.0.1 http"},
				{xff("203.0.113.5, 192.0.2.2"), "192.0.2.2 http"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startPrio(t, tc.args...)
			for _, c := range tc.checks {
				r := p.request("/whoami", c.hdr)
				if r.err != nil || r.status != 200 || r.body != c.want {
					t.Errorf("X-Forwarded-For %q, X-Forwarded-Proto %q: got %v, want %q",
						c.hdr.Values("X-Forwarded-For"), c.hdr.Get("X-Forwarded-Proto"), r, c.want)
				}
			}
			// The access log names the client as REMOTE_ADDR does.
			if tc.name == "default" {
				p.WaitStdout(t, `2001:db8::7 - - [`)
				for _, line := range strings.Split(p.Stdout(), "\n") {
					if strings.Contains(line, "/whoami") && strings.HasPrefix(line, "10.1.2.3 ") {
						return
					}
				}
				t.Errorf("no access log line for client 10.1.2.3:\n%s", p.Stdout())
			}
		})
	}
}

// TestClientTrustedProxiesInvalid: a --trusted-proxies entry that is no
// address, prefix or "private" stops wsgo at start-up.
func TestClientTrustedProxiesInvalid(t *testing.T) {
	t.Parallel()
	res := runWsgo(t, "--module", "priorityapp", "--chdir", testdataDir(t), "--http-socket", "127.0.0.1:0",
		"--trusted-proxies", "10.0.0.0/8,nonsense")
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "--trusted-proxies") {
		t.Errorf("exit %d, stderr:\n%s\nwant a failure naming --trusted-proxies", res.ExitCode, res.Stderr)
	}
}

// waitLogLine waits until a line of the server's stderr matches re and
// returns its submatches.
func (p *prioServer) waitLogLine(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	var m []string
	if !p.stderr.waitUntil(func(out string) bool { m = re.FindStringSubmatch(out); return m != nil }, waitTimeout, p.exited) {
		t.Fatalf("no line matching %q on the server's stderr within %v; stderr:\n%s", re, waitTimeout, tail(p.Stderr()))
	}
	return m
}

// blockLogRE matches the log line at the start of client's block.
func blockLogRE(client string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)msg="client blocked" .*client=` + regexp.QuoteMeta(client) + ` seconds=(\S+)$`)
}

// blockEndedRE matches the log line at the end of client's block.
func blockEndedRE(client string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)msg="client block ended" .*client=` + regexp.QuoteMeta(client) + ` refused=(\d+)$`)
}

// TestBlock: "X-WSGo-Block: SECONDS" from the app blocks the client of that
// request (the header itself is not sent). Its next requests get an empty
// 429, each held until the block ends, and are not logged; another client
// is served at once meanwhile; the end of the block is logged with the
// count of refused requests, and the client is served again.
func TestBlock(t *testing.T) {
	t.Parallel()
	p := startPrio(t, "--workers", "4")
	a, b := clientHeader("203.0.113.60"), clientHeader("203.0.113.61")

	r := p.request("/block?s=2", a)
	blockedAt := time.Now()
	wantOK(t, "the request that blocks", r, "blocking")
	if v, ok := r.header["X-Wsgo-Block"]; ok {
		t.Errorf("X-WSGo-Block reached the client: %q", v)
	}
	if m := p.waitLogLine(t, blockLogRE("203.0.113.60")); m[1] != "2" {
		t.Errorf("block start line %q, want seconds=2", m[0])
	}

	const refused = 3
	var held []<-chan prioReply
	for i := 0; i < refused; i++ {
		held = append(held, p.send("/whoami", a))
	}
	other := p.request("/whoami", b)
	wantOK(t, "the other client during the block", other, "203.0.113.61 http")
	if other.took > 500*time.Millisecond {
		t.Errorf("the other client waited %v during the block, want under 500ms", other.took)
	}
	for i, ch := range held {
		r := await(t, "a blocked request", ch)
		if r.err != nil || r.status != 429 || r.body != "" || r.header.Get("Content-Length") != "0" {
			t.Errorf("blocked request %d: got %v, Content-Length %q; want an empty 429 with Content-Length 0",
				i, r, r.header.Get("Content-Length"))
		}
		// Held until the block ends, about 2 s after it began.
		if r.took < time.Second {
			t.Errorf("blocked request %d was answered after %v, want it held about the rest of the block (over 1s)", i, r.took)
		}
	}
	if since := time.Since(blockedAt); since < 1900*time.Millisecond {
		t.Errorf("the blocked requests were answered %v after the block began, want about 2s", since)
	}
	if m := p.waitLogLine(t, blockEndedRE("203.0.113.60")); m[1] != fmt.Sprint(refused) {
		t.Errorf("block end line %q, want refused=%d", m[0], refused)
	}

	wantOK(t, "the client after its block", p.request("/whoami", a), "203.0.113.60 http")
	waitFor(t, waitTimeout, "the access log line of the request after the block", func() bool {
		return strings.Count(p.Stdout(), `203.0.113.60 - - `) >= 2
	})
	if strings.Contains(p.Stdout(), `" 429 `) {
		t.Errorf("blocked requests are in the access log:\n%s", p.Stdout())
	}
	if n := strings.Count(p.Stdout(), `203.0.113.60 - - `); n != 2 {
		t.Errorf("the access log has %d lines for the blocked client, want 2 (the block and the request after it):\n%s", n, p.Stdout())
	}

	// Values that are not a positive number of seconds block nobody.
	c := clientHeader("203.0.113.62")
	for _, v := range []string{"abc", "0", "-5"} {
		mark := p.stderr.Len()
		wantOK(t, "X-WSGo-Block: "+v, p.request("/block?s="+v, c), "blocking")
		p.WaitStderrAfter(t, mark, "not a positive number of seconds")
		wantOK(t, "the request after X-WSGo-Block: "+v, p.request("/whoami", c), "203.0.113.62 http")
	}
	if strings.Contains(p.Stderr(), "client=203.0.113.62") {
		t.Errorf("an invalid X-WSGo-Block blocked the client:\n%s", tail(p.Stderr()))
	}
}

// TestBlockHeldLimit: at most 100 refusals are held at once; the others
// are answered at once. Other clients are not slowed.
func TestBlockHeldLimit(t *testing.T) {
	t.Parallel()
	p := startPrio(t, "--workers", "2")
	a := clientHeader("203.0.113.70")
	wantOK(t, "the request that blocks", p.request("/block?s=4", a), "blocking")
	p.waitLogLine(t, blockLogRE("203.0.113.70"))

	const sent, maxHeld = 110, 100
	replies := make([]prioReply, sent)
	var wg sync.WaitGroup
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = p.request("/whoami", a)
		}()
	}
	other := p.request("/whoami", clientHeader("203.0.113.71"))
	wantOK(t, "the other client during the block", other, "203.0.113.71 http")
	if other.took > 500*time.Millisecond {
		t.Errorf("the other client waited %v during the block, want under 500ms", other.took)
	}
	wg.Wait()
	fast := 0
	for i, r := range replies {
		if r.err != nil || r.status != 429 || r.body != "" {
			t.Errorf("blocked request %d: got %v, want an empty 429", i, r)
		}
		if r.took < time.Second {
			fast++
		}
	}
	if fast != sent-maxHeld {
		t.Errorf("%d of %d refusals were answered at once, want %d (the rest held)", fast, sent, sent-maxHeld)
	}
	if m := p.waitLogLine(t, blockEndedRE("203.0.113.70")); m[1] != fmt.Sprint(sent) {
		t.Errorf("block end line %q, want refused=%d", m[0], sent)
	}
	wantOK(t, "the client after its block", p.request("/whoami", a), "203.0.113.70 http")
}
