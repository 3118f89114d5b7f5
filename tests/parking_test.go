package tests

import (
	"bytes"
	"debug/buildinfo"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wsgo/internal/procstat"
)

// The tests of request parking: an app answers with X-WSGo-Park, the
// client gets nothing until wsgo.notify_parked names one of the request's
// channels or its X-WSGo-Park-Timeout runs out, and then a retry of the
// request, a dropped connection, a 204 or a 504.
//
// Parked requests are sent on raw connections, so that a test sees exactly
// what the client gets (nothing at all, for a dropped connection) and can
// go on using the connection afterwards.
//
// Nothing tells a client that its request is parked. The app counts its
// park responses (/parked-calls), but a request it has answered is parked
// by the server a moment later, and a notification that comes in between
// does not wake it. So a test wakes requests with wake, which notifies
// again until the expected number has been woken in all.

// parkServer is a wsgo server on parkapp, with the directory in which a
// test creates the file that lets a /park?gate=NAME request go on.
type parkServer struct {
	*server
	gates string
}

func startPark(t testing.TB, env []string, args ...string) *parkServer {
	t.Helper()
	gates := t.TempDir()
	s := startServerEnv(t, append([]string{"PARKAPP_GATES=" + gates}, env...), "parkapp", args...)
	return &parkServer{server: s, gates: gates}
}

// parkPath is /park on the channels ch, with X-WSGo-Park-Timeout timeout
// ("" for none) and further query name/value pairs.
func parkPath(ch, timeout string, kv ...string) string {
	p := "/park?ch=" + url.QueryEscape(ch)
	if timeout != "" {
		p += "&timeout=" + url.QueryEscape(timeout)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		p += "&" + url.QueryEscape(kv[i]) + "=" + url.QueryEscape(kv[i+1])
	}
	return p
}

// query is the query string of path, as the app sees it.
func query(path string) string {
	_, q, _ := strings.Cut(path, "?")
	return q
}

// rawReq is an HTTP/1.1 request for a raw connection: method and path,
// header lines ("Name: value"), and body with its Content-Length (none for
// a GET without a body).
func rawReq(method, path, body string, hdr ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n")
	for _, h := range hdr {
		b.WriteString(h + "\r\n")
	}
	if body != "" || method != "GET" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

func rawGET(path string, hdr ...string) string { return rawReq("GET", path, "", hdr...) }

// pending is a request sent on a raw connection whose answer is read in
// the background.
type pending struct {
	rc   *rawConn
	sent time.Time
	done chan struct{}
	// Set once done is closed:
	resp *response // the response (sendParked), nil on err
	// close: the response said Connection: close (which net/http takes
	// out of its header).
	close bool
	raw   []byte // everything until the server closed (toClose)
	err   error
	at    time.Time // when the answer (or the end of the connection) came
}

// sendParked sends req on rc and reads the next response, to a request
// with method, in the background.
func sendParked(rc *rawConn, req, method string) *pending {
	rc.t.Helper()
	pd := &pending{rc: rc, sent: time.Now(), done: make(chan struct{})}
	rc.send(req)
	go func() {
		defer close(pd.done)
		defer func() { pd.at = time.Now() }()
		resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
		if err != nil {
			pd.err = err
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		pd.resp, pd.err, pd.close = &response{Status: resp.StatusCode, StatusLine: resp.Status, Header: resp.Header,
			Body: body, TE: resp.TransferEncoding}, err, resp.Close
	}()
	return pd
}

// sendToClose sends req on rc and reads, in the background, everything
// the server sends until it closes the connection.
func sendToClose(rc *rawConn, req string) *pending {
	rc.t.Helper()
	pd := &pending{rc: rc, sent: time.Now(), done: make(chan struct{})}
	rc.send(req)
	go func() {
		defer close(pd.done)
		pd.raw, pd.err = io.ReadAll(rc.br)
		pd.at = time.Now()
	}()
	return pd
}

// park sends a GET of path on a new connection (see sendParked).
func (p *parkServer) park(t testing.TB, path string, hdr ...string) *pending {
	t.Helper()
	return sendParked(dialRaw(t, p.server), rawGET(path, hdr...), "GET")
}

// answered reports whether the answer has come.
func (pd *pending) answered() bool {
	select {
	case <-pd.done:
		return true
	default:
		return false
	}
}

// await waits (bounded) for the answer.
func (pd *pending) await(t testing.TB, what string) *pending {
	t.Helper()
	select {
	case <-pd.done:
	case <-time.After(waitTimeout):
		t.Fatalf("%s: no answer within %v", what, waitTimeout)
	}
	return pd
}

// response waits for the answer and fails the test unless it is a
// response with status.
func (pd *pending) response(t testing.TB, what string, status int) *response {
	t.Helper()
	pd.await(t, what)
	if pd.err != nil {
		t.Fatalf("%s: want a %d response, got %v", what, status, pd.err)
	}
	if pd.resp.Status != status {
		t.Fatalf("%s: status = %q, want %d; body %.300q", what, pd.resp.StatusLine, status, pd.resp.Body)
	}
	if bytes.Contains(pd.resp.Body, []byte("parked")) {
		t.Errorf("%s: the client got the body of the app's park response: %q", what, pd.resp.Body)
	}
	return pd.resp
}

// wantRetried fails the test unless the answer is the app's 200 to the
// retry of a request, with body want.
func (pd *pending) wantRetried(t testing.TB, what, want string) {
	t.Helper()
	r := pd.response(t, what, 200)
	if r.String() != want {
		t.Errorf("%s: body = %q, want %q", what, r.Body, want)
	}
	if v := r.Header.Get("X-Wsgo-Park"); v != "" {
		t.Errorf("%s: the client got the app's X-WSGo-Park: %q", what, v)
	}
}

// saysClose reports whether the response head in raw has Connection:
// close.
func saysClose(raw []byte) bool {
	head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n")[1:] {
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(name, "Connection") && strings.EqualFold(strings.TrimSpace(value), "close") {
			return true
		}
	}
	return false
}

// wantDropped fails the test unless the server closed the connection
// without sending anything.
func (pd *pending) wantDropped(t testing.TB, what string) {
	t.Helper()
	pd.await(t, what)
	if len(pd.raw) != 0 {
		t.Errorf("%s: want the connection dropped without a response, got %.300q", what, pd.raw)
	}
}

// wantKeptAlive fails the test unless the connection of an answered
// request takes another request: a GET of / answered "ok".
func (pd *pending) wantKeptAlive(t testing.TB, what string) {
	t.Helper()
	if pd.close {
		t.Errorf("%s: answered with Connection: close on a keep-alive connection", what)
	}
	pd.rc.send(rawGET("/"))
	r, err := pd.rc.readResponse("GET")
	if err != nil {
		t.Fatalf("%s: the next request on the connection got %v, want 200 ok", what, err)
	}
	if r.Status != 200 || r.String() != "ok" {
		t.Errorf("%s: the next request on the connection got %q %q, want 200 ok", what, r.StatusLine, r.Body)
	}
}

// notify calls wsgo.notify_parked once through endpoint (/notify or
// /notify-thread) and returns the app's answer: the number woken, or the
// exception.
func (p *parkServer) notify(t testing.TB, endpoint, ch, action string, arg ...string) string {
	t.Helper()
	q := url.Values{"ch": {ch}, "action": {action}}
	if len(arg) > 0 {
		q.Set("arg", arg[0])
	}
	r := get(t, p.URL+endpoint+"?"+q.Encode())
	wantStatus(t, r, 200)
	return r.String()
}

// wake notifies ch with action (and arg, unless "") through /notify until
// want requests have been woken in all, and returns what each call woke.
// It fails the test when more are woken, or fewer within waitTimeout.
func (p *parkServer) wake(t testing.TB, ch, action, arg string, want int) []int {
	t.Helper()
	var args []string
	if arg != "" {
		args = []string{arg}
	}
	var counts []int
	total := 0
	waitFor(t, waitTimeout, fmt.Sprintf("notify_parked(%q, %s) to wake %d request(s)", ch, action, want),
		func() bool {
			ans := p.notify(t, "/notify", ch, action, args...)
			n := atoiOr(ans)
			if n < 0 {
				t.Fatalf("notify_parked(%q, %s): the app answered %q", ch, action, ans)
			}
			if n > 0 {
				counts = append(counts, n)
			}
			total += n
			return total >= want
		})
	if total != want {
		t.Fatalf("notify_parked(%q, %s) woke %d request(s) in all (%v), want %d", ch, action, total, counts, want)
	}
	return counts
}

// count reads one of the app's counters (/parked-calls, /closes).
func (p *parkServer) count(t testing.TB, path string) int {
	t.Helper()
	r := get(t, p.URL+path)
	wantStatus(t, r, 200)
	return atoiOr(r.String())
}

// waitCalls waits until the app has answered n first runs of /park in
// all.
func (p *parkServer) waitCalls(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%d park responses from the app", n), func() bool { return p.count(t, "/parked-calls") >= n })
}

// open lets the /park?gate=NAME request go on.
func (p *parkServer) open(t testing.TB, name string) {
	if err := os.WriteFile(filepath.Join(p.gates, name), nil, 0o644); err != nil {
		t.Errorf("opening gate %s: %v", name, err)
	}
}

// TestParkNotifyActions: a parked request gets nothing until a
// notification, and then what its action says: a retry of the same
// request (method, query, headers and body) with the notification's
// argument, a dropped connection, a 204 or a 504. The app's park response
// body never reaches the client, and is closed.
func TestParkNotifyActions(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)

	t.Run("retry GET", func(t *testing.T) {
		path := parkPath("retry-get", "", "x", "1")
		pd := p.park(t, path, "X-Test: kept")
		p.wake(t, "retry-get", "retry", "hello world", 1)
		pd.wantRetried(t, "retried GET", "retried arg=hello world method=GET body= qs="+query(path)+" x-test=kept")
	})

	t.Run("retry POST", func(t *testing.T) {
		path := parkPath("retry-post", "")
		pd := sendParked(dialRaw(t, p.server), rawReq("POST", path, "a=1&b=two",
			"Content-Type: application/x-www-form-urlencoded", "X-Test: posted"), "POST")
		p.wake(t, "retry-post", "retry", "p", 1)
		pd.wantRetried(t, "retried POST", "retried arg=p method=POST body=a=1&b=two qs="+query(path)+" x-test=posted")
	})

	t.Run("retry chunked PUT", func(t *testing.T) {
		path := parkPath("retry-put", "")
		req := "PUT " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
		pd := sendParked(dialRaw(t, p.server), req, "PUT")
		p.wake(t, "retry-put", "retry", "q", 1)
		pd.wantRetried(t, "retried chunked PUT", "retried arg=q method=PUT body=hello world qs="+query(path)+" x-test=-")
	})

	t.Run("retry without an argument", func(t *testing.T) {
		path := parkPath("retry-noarg", "")
		pd := p.park(t, path)
		p.wake(t, "retry-noarg", "retry", "", 1)
		pd.wantRetried(t, "retried without arg", "retried arg= method=GET body= qs="+query(path)+" x-test=-")
	})

	t.Run("disconnect", func(t *testing.T) {
		pd := sendToClose(dialRaw(t, p.server), rawGET(parkPath("drop", "")))
		p.wake(t, "drop", "disconnect", "", 1)
		pd.wantDropped(t, "disconnected")
	})

	t.Run("http-204", func(t *testing.T) {
		pd := p.park(t, parkPath("s204", ""))
		p.wake(t, "s204", "http-204", "", 1)
		r := pd.response(t, "http-204", 204)
		if len(r.Body) != 0 {
			t.Errorf("204 with a body: %q", r.Body)
		}
		// The app's park response headers are not sent either.
		if ct := r.Header.Get("Content-Type"); ct != "" {
			t.Errorf("204 with the app's Content-Type %q", ct)
		}
	})

	t.Run("http-504", func(t *testing.T) {
		pd := p.park(t, parkPath("s504", ""))
		p.wake(t, "s504", "http-504", "", 1)
		if r := pd.response(t, "http-504", 504); len(r.Body) == 0 {
			t.Errorf("504 without its short text body")
		}
	})

	t.Run("the notification's action, not the timeout's", func(t *testing.T) {
		pd := p.park(t, parkPath("override", "60 retry"))
		p.wake(t, "override", "http-504", "", 1)
		pd.response(t, "notified http-504 on a request with a retry timeout", 504)
	})

	// Every park response's body was closed.
	calls := p.count(t, "/parked-calls")
	waitFor(t, waitTimeout, fmt.Sprintf("the app's %d park response bodies to be closed", calls), func() bool {
		return p.count(t, "/closes") == calls
	})
}

// TestParkTimeoutActions: a parked request that no notification wakes
// gets its X-WSGo-Park-Timeout action once its time has run out; a retry
// then has an empty X-WSGo-Park-Arg, and the action defaults to http-204.
func TestParkTimeoutActions(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	const after = 300 * time.Millisecond
	for _, tc := range []struct {
		name, timeout string
		check         func(t *testing.T, pd *pending, path string)
	}{
		{"retry", "0.3 retry", func(t *testing.T, pd *pending, path string) {
			pd.wantRetried(t, "timeout retry", "retried arg= method=GET body= qs="+query(path)+" x-test=-")
		}},
		{"disconnect", "0.3 disconnect", func(t *testing.T, pd *pending, _ string) {
			pd.wantDropped(t, "timeout disconnect")
		}},
		{"http-204", "0.3 http-204", func(t *testing.T, pd *pending, _ string) {
			pd.response(t, "timeout http-204", 204)
		}},
		{"http-504", "0.3 http-504", func(t *testing.T, pd *pending, _ string) {
			pd.response(t, "timeout http-504", 504)
		}},
		{"default action", "0.3", func(t *testing.T, pd *pending, _ string) {
			pd.response(t, "timeout without an action", 204)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := parkPath("timeout-"+tc.name, tc.timeout)
			var pd *pending
			if tc.name == "disconnect" {
				pd = sendToClose(dialRaw(t, p.server), rawGET(path))
			} else {
				pd = p.park(t, path)
			}
			tc.check(t, pd, path)
			if took := pd.at.Sub(pd.sent); took < after {
				t.Errorf("answered %v after the request, before its %v timeout", took, after)
			}
		})
	}
}

// TestParkChannels: a notification wakes the requests parked on any of
// its channels and no others, each once, however many of its channels it
// names.
func TestParkChannels(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	a := p.park(t, parkPath("a", ""))
	b := p.park(t, parkPath("b", ""))
	c := p.park(t, parkPath("c", ""))
	ab := p.park(t, parkPath("a, b", "")) // on both, woken once
	de := p.park(t, parkPath("d,e", ""))
	p.waitCalls(t, 5, waitTimeout)

	p.wake(t, "a,b", "http-204", "", 3)
	for what, pd := range map[string]*pending{"on a": a, "on b": b, "on a and b": ab} {
		pd.response(t, "request "+what, 204)
		// A second wake-up would have sent a second 204 on the
		// connection; the next request gets its own response.
		pd.wantKeptAlive(t, "request "+what)
	}
	if c.answered() || de.answered() {
		t.Fatalf("requests on other channels answered by the notification of a,b: c %v, d,e %v", c.answered(), de.answered())
	}

	p.wake(t, "c", "http-504", "", 1)
	c.response(t, "request on c", 504)
	p.wake(t, "e,f", "http-204", "", 1) // one of its channels is enough
	de.response(t, "request on d,e", 204)
	if ans := p.notify(t, "/notify", "a,b,c,d,e", "http-204"); ans != "0" {
		t.Errorf("notifying the channels of requests already woken woke %s, want 0", ans)
	}
}

// TestParkNotifyResults: notify_parked returns how many requests it woke,
// 0 for channels no request is parked on, and raises ValueError for an
// action that is none of wsgo's, in a request's thread as in another.
func TestParkNotifyResults(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	for _, endpoint := range []string{"/notify", "/notify-thread"} {
		for _, ch := range []string{"nobody", "", " , ,"} {
			if ans := p.notify(t, endpoint, ch, "http-204"); ans != "0" {
				t.Errorf("%s on channels %q: %q, want 0", endpoint, ch, ans)
			}
		}
	}

	var parked []*pending
	for range 3 {
		parked = append(parked, p.park(t, parkPath("three", "")))
	}
	p.waitCalls(t, 3, waitTimeout)
	for _, endpoint := range []string{"/notify", "/notify-thread"} {
		for _, action := range []string{"4", "-1", "99"} {
			ans := p.notify(t, endpoint, "three", action)
			if !strings.HasPrefix(ans, "ValueError: ") {
				t.Errorf("%s with action %s: %q, want a ValueError", endpoint, action, ans)
			}
		}
	}
	for i, pd := range parked {
		if pd.answered() {
			t.Fatalf("parked request %d answered after notifications with bad actions: %v %v", i, pd.resp, pd.err)
		}
	}
	counts := p.wake(t, "three", "http-204", "", 3)
	t.Logf("notify_parked woke %v", counts)
	for i, pd := range parked {
		pd.response(t, fmt.Sprintf("request %d", i), 204)
	}
	if ans := p.notify(t, "/notify", "three", "http-204"); ans != "0" {
		t.Errorf("notifying again: %q, want 0", ans)
	}
}

// TestParkNotifyFromThread: a thread the app started, and a timer job,
// wake parked requests too.
func TestParkNotifyFromThread(t *testing.T) {
	t.Parallel()
	t.Run("threading.Thread", func(t *testing.T) {
		t.Parallel()
		p := startPark(t, nil)
		path := parkPath("thread", "")
		pd := sendParked(dialRaw(t, p.server), rawReq("POST", path, "from a thread"), "POST")
		total := 0
		waitFor(t, waitTimeout, "notify_parked from a thread to wake the request", func() bool {
			ans := p.notify(t, "/notify-thread", "thread", "retry", "t1")
			if atoiOr(ans) < 0 {
				t.Fatalf("/notify-thread: %q", ans)
			}
			total += atoiOr(ans)
			return total > 0
		})
		if total != 1 {
			t.Errorf("notify_parked from a thread woke %d, want 1", total)
		}
		pd.wantRetried(t, "retried from a thread", "retried arg=t1 method=POST body=from a thread qs="+query(path)+" x-test=-")
	})

	t.Run("timer job", func(t *testing.T) {
		t.Parallel()
		p := startPark(t, []string{"PARKAPP_TIMER=1"})
		pd := p.park(t, parkPath("cron", "")) // 2 hours and a 204, unless the job's 504 comes
		pd.response(t, "request woken by the timer job", 504)
		p.WaitStdout(t, "parkapp: timer woke 1")
	})
}

// TestParkRetryNotReparked: a retried request cannot park again: the
// app's X-WSGo-Park is ignored and its response is sent.
func TestParkRetryNotReparked(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	path := parkPath("once", "")
	pd := p.park(t, path)
	p.wake(t, "once", "retry", "1", 1)
	// parkapp's retry answer carries X-WSGo-Park: once.
	pd.wantRetried(t, "retry that sends X-WSGo-Park", "retried arg=1 method=GET body= qs="+query(path)+" x-test=-")
	if ans := p.notify(t, "/notify", "once", "http-504"); ans != "0" {
		t.Errorf("the retried request was parked again: a notification woke %s", ans)
	}
	if n := p.count(t, "/parked-calls"); n != 1 {
		t.Errorf("the app parked %d times, want 1", n)
	}
}

// TestParkForgedArg: X-WSGo-Park-Arg from a client is dropped, so the
// app never takes a first run for a retry, and a retry gets the
// notification's argument, not the client's.
func TestParkForgedArg(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	path := parkPath("forged", "")
	pd := p.park(t, path, "X-WSGo-Park-Arg: forged")
	p.waitCalls(t, 1, waitTimeout) // parked, not answered as a retry
	p.wake(t, "forged", "retry", "genuine", 1)
	pd.wantRetried(t, "retry of a request with a forged arg", "retried arg=genuine method=GET body= qs="+query(path)+" x-test=-")

	// Only the first request on a connection given back for a retry is
	// the retry: the next one, with a forged arg again, parks.
	pd2 := sendParked(pd.rc, rawGET(path, "X-WSGo-Park-Arg: forged-again"), "GET")
	p.waitCalls(t, 2, waitTimeout)
	p.wake(t, "forged", "http-204", "", 1)
	pd2.response(t, "second request on the retry's connection", 204)
}

// TestParkKeepAlive: after a 204, a 504 or a retry's response, an
// HTTP/1.1 keep-alive connection takes the next request; an HTTP/1.0 one,
// or one the client asked to close, is answered with Connection: close and
// closed.
func TestParkKeepAlive(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	for _, tc := range []struct {
		ch, action string
		status     int
	}{
		{"ka204", "http-204", 204},
		{"ka504", "http-504", 504},
		{"kaRetry", "retry", 200},
	} {
		t.Run(tc.action, func(t *testing.T) {
			t.Parallel()
			pd := p.park(t, parkPath(tc.ch, ""))
			p.wake(t, tc.ch, tc.action, "", 1)
			pd.response(t, tc.action, tc.status)
			pd.wantKeptAlive(t, tc.action)
			// And a request on it parks again, and wakes.
			pd2 := sendParked(pd.rc, rawGET(parkPath(tc.ch, "")), "GET")
			p.wake(t, tc.ch, "http-204", "", 1)
			pd2.response(t, "the next parked request on the connection", 204)
			pd2.wantKeptAlive(t, "the next parked request on the connection")
		})
	}
	for _, tc := range []struct{ name, ch, req string }{
		{"HTTP/1.0", "close10", "GET " + parkPath("close10", "") + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"},
		{"Connection: close", "closeReq", rawGET(parkPath("closeReq", ""), "Connection: close")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pd := sendToClose(dialRaw(t, p.server), tc.req)
			p.wake(t, tc.ch, "http-204", "", 1)
			pd.await(t, tc.name)
			if r := parseRaw(t, pd.raw, "GET"); r.Status != 204 || !saysClose(pd.raw) {
				t.Errorf("%s: got %q, want a 204 with Connection: close", tc.name, pd.raw)
			}
		})
	}
}

// TestParkPipelined: a request the client pipelined after a parked one is
// answered after the parked one wakes, on the same connection.
func TestParkPipelined(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	for _, tc := range []struct {
		action string
		status int
	}{{"http-204", 204}, {"retry", 200}} {
		t.Run(tc.action, func(t *testing.T) {
			t.Parallel()
			ch := "pipe-" + tc.action
			rc := dialRaw(t, p.server)
			pd := sendParked(rc, rawGET(parkPath(ch, ""))+rawGET("/after"), "GET")
			p.wake(t, ch, tc.action, "", 1)
			pd.response(t, "parked request", tc.status)
			r, err := rc.readResponse("GET")
			if err != nil || r.Status != 200 || r.String() != "ok" {
				t.Fatalf("the pipelined request after the parked one: %v %v, want 200 ok", r, err)
			}
		})
	}
}

// TestParkHoldsNoWorker: parked requests hold no worker: with one worker,
// 50 of them park and the worker still answers at once.
func TestParkHoldsNoWorker(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil, "--workers", "1")
	const n = 50
	parked := make([]*pending, n)
	for i := range parked {
		parked[i] = p.park(t, parkPath("many", ""))
	}
	p.waitCalls(t, n, waitTimeout)
	start := time.Now()
	if st, body, err := fetch(freshClient(waitTimeout), p.URL+"/"); err != nil || st != 200 || body != "ok" {
		t.Fatalf("GET / with %d requests parked: %d %q %v", n, st, body, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("GET / with %d requests parked took %v", n, took)
	}
	p.wake(t, "many", "http-204", "", n)
	for i, pd := range parked {
		pd.response(t, fmt.Sprintf("parked request %d", i), 204)
	}
}

// TestParkShutdown: on SIGTERM the parked requests are answered 204 with
// Connection: close, and the server exits.
func TestParkShutdown(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	var parked []*pending
	for i := range 3 {
		parked = append(parked, sendToClose(dialRaw(t, p.server), rawGET(parkPath("sd"+strconv.Itoa(i), "7000 http-504"))))
	}
	// A request parks a moment after the app has answered; should
	// SIGTERM come in between, the server must still answer it 204 (see
	// TestParkDuringShutdown).
	p.waitCalls(t, 3, waitTimeout)
	p.Signal(t, syscall.SIGTERM)
	for i, pd := range parked {
		what := fmt.Sprintf("request %d parked at SIGTERM", i)
		pd.await(t, what)
		if r := parseRaw(t, pd.raw, "GET"); r.Status != 204 || !saysClose(pd.raw) {
			t.Errorf("%s: got %q, want a 204 with Connection: close", what, pd.raw)
		}
	}
	if code := p.WaitExit(t); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
	if got := len(regexp.MustCompile(`"GET /park\?ch=sd\d\S* HTTP/1\.1" 204 `).FindAllString(p.Stdout(), -1)); got != 3 {
		t.Errorf("access log has %d 204 lines for the requests parked at SIGTERM, want 3:\n%s", got, tail(p.Stdout()))
	}
}

// TestParkDuringShutdown: a request that was running in the app when
// SIGTERM came, and parks once the server is stopping, is answered 204
// with Connection: close too, not left without an answer.
func TestParkDuringShutdown(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	mark := p.stderr.Len()
	late := sendToClose(dialRaw(t, p.server), rawGET(parkPath("late", "", "gate", "late")))
	t.Cleanup(func() { p.open(t, "late") })
	p.WaitStderrAfter(t, mark, "parkapp: gate late waiting")
	early := sendToClose(dialRaw(t, p.server), rawGET(parkPath("early", "")))
	p.waitCalls(t, 1, waitTimeout)

	p.Signal(t, syscall.SIGTERM)
	// The request parked before SIGTERM is answered: the server is
	// stopping, and has answered what was parked.
	early.await(t, "request parked before SIGTERM")
	if r := parseRaw(t, early.raw, "GET"); r.Status != 204 {
		t.Fatalf("request parked before SIGTERM: %q, want 204", r.StatusLine)
	}
	p.open(t, "late")
	late.await(t, "request that parked during the shutdown")
	if len(late.raw) == 0 {
		t.Fatalf("request that parked during the shutdown: the connection was closed without an answer, want 204 with Connection: close")
	}
	if r := parseRaw(t, late.raw, "GET"); r.Status != 204 || !saysClose(late.raw) {
		t.Errorf("request that parked during the shutdown: got %q, want a 204 with Connection: close", late.raw)
	}
	if code := p.WaitExit(t); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0", code)
	}
}

// TestParkAccessLog: a parked request is logged once, when it is
// answered: with 204 or 504, with 444 when its connection was dropped, and
// as its re-run when retried.
func TestParkAccessLog(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	for _, tc := range []struct {
		ch, timeout, action string // action "" for the timeout's
		status              string
	}{
		{"log-n204", "", "http-204", "204"},
		{"log-n504", "", "http-504", "504"},
		{"log-ndrop", "", "disconnect", "444"},
		{"log-nretry", "", "retry", "200"},
		{"log-t204", "0.2 http-204", "", "204"},
		{"log-t504", "0.2 http-504", "", "504"},
		{"log-tdrop", "0.2 disconnect", "", "444"},
		{"log-tretry", "0.2 retry", "", "200"},
	} {
		t.Run(tc.ch, func(t *testing.T) {
			t.Parallel()
			path := parkPath(tc.ch, tc.timeout)
			pd := sendToClose(dialRaw(t, p.server), rawGET(path, "Connection: close"))
			if tc.action != "" {
				p.wake(t, tc.ch, tc.action, "", 1)
			}
			pd.await(t, tc.ch)
			re := regexp.MustCompile(`"GET ` + regexp.QuoteMeta(path) + ` HTTP/1\.1" (\d+) (\d+) .* w(\S+) p\S+\n`)
			m := p.WaitStdoutMatches(t, 0, re, 1)
			if len(m) != 1 || m[0][1] != tc.status {
				t.Errorf("access log lines for %s: %q, want one with status %s", path, m, tc.status)
			}
			if tc.status == "200" && m[0][3] == "-" {
				t.Errorf("the retry's log line names no worker: %q", m[0][0])
			}
		})
	}
}

// TestParkBodyTooLarge: a request whose body is more than the 1 MiB the
// server keeps cannot be replayed, so it cannot park: 500. One of exactly
// 1 MiB parks, and its retry gets the whole body.
func TestParkBodyTooLarge(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)

	t.Run("over 1 MiB", func(t *testing.T) {
		path := parkPath("big", "", "size", "over")
		r := post(t, p.URL+path, "application/octet-stream", bytes.Repeat([]byte("x"), 1<<20+1))
		wantStatus(t, r, 500)
		if bytes.Contains(r.Body, []byte("parked")) {
			t.Errorf("the client got the body of the app's park response: %q", r.Body)
		}
		p.WaitStdoutMatches(t, 0, regexp.MustCompile(`"POST `+regexp.QuoteMeta(path)+` HTTP/1\.1" 500 `), 1)
		healthy(t, p.server, "/")
	})

	t.Run("1 MiB", func(t *testing.T) {
		path := parkPath("mib", "")
		pd := sendParked(dialRaw(t, p.server), rawReq("POST", path, strings.Repeat("y", 1<<20)), "POST")
		p.wake(t, "mib", "retry", "m", 1)
		pd.wantRetried(t, "retry of a 1 MiB POST", "retried arg=m method=POST body=<1048576 bytes> qs="+query(path)+" x-test=-")
	})
}

// serverRSSKB is the resident set size of the server: the supervisor and
// its worker processes.
func serverRSSKB(t testing.TB, s *server) int64 {
	t.Helper()
	var total int64
	for _, pid := range append([]int{s.PID()}, s.Children(t)...) {
		m, err := procstat.ReadMemory(pid)
		if err != nil {
			t.Fatal(err)
		}
		total += m.RSS
	}
	return total
}

// isRaceBuild reports whether the Go binary at path was built with -race.
func isRaceBuild(path string) bool {
	info, err := buildinfo.ReadFile(path)
	if err != nil {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// plainBin is the binary TestParkTenThousand measures. The race detector
// multiplies the server's memory (10,000 parked requests: 330-370 MB
// against 80 MB) and slows it, so the test runs the build without it when
// there is one: $WSGO_BIN_PLAIN, else ../bin/wsgo (which `make test`
// builds along with bin/wsgo-race); else WSGO_BIN.
func plainBin(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("WSGO_BIN_PLAIN"), filepath.Join("..", "bin", "wsgo")}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		abs, err := filepath.Abs(c)
		if err != nil {
			continue
		}
		if st, err := os.Stat(abs); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 && !isRaceBuild(abs) {
			return abs
		}
	}
	return wsgoBin(t)
}

// TestParkTenThousand: 10,000 requests parked on one process cost the
// server (supervisor and worker) under 200 MB of RSS in all, and one
// notification answers them all within a second. It runs the server
// built without the race detector when there is one (see plainBin);
// with only a -race build it still parks and wakes the 10,000 but does
// not hold the server to the memory and time figures. Not parallel: it
// measures the server alone, and holds 10,000 connections.
func TestParkTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("parks 10,000 connections")
	}
	const (
		maxRSSKB   = 200 << 10
		wakeWithin = time.Second
	)
	n := 10000
	// The test and the server each hold a descriptor per connection; the
	// server, started by exec, inherits the test's limit.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if want := uint64(n + 1000); lim.Cur < want {
		lim.Cur = min(want, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raising RLIMIT_NOFILE to %d: %v", lim.Cur, err)
		}
		if lim.Cur < want {
			n = int(lim.Cur) - 1000
			t.Logf("RLIMIT_NOFILE is at most %d: parking %d connections only", lim.Max, n)
		}
	}
	bin := plainBin(t)
	race := isRaceBuild(bin)
	t.Setenv("WSGO_BIN", bin)
	begin := time.Now()
	// The requests come faster than the app parks them: with the default
	// --queue-size of 1000 the server would rightly answer the excess 503.
	// This test is about what parked requests cost, not admission.
	p := startPark(t, nil, "--queue-size", strconv.Itoa(n))
	idle := serverRSSKB(t, p.server)
	t.Logf("server %s (race detector: %v); RSS before parking %d kB", bin, race, idle)

	// Each connection sends its request and waits for the answer.
	type answer struct {
		ok  bool
		got string
		at  time.Time
	}
	answers := make([]answer, n)
	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var readers sync.WaitGroup
	var early sync.Map // connections answered before the notification: index → what they got
	var notified atomic.Bool
	read := func(i int, c net.Conn) {
		defer readers.Done()
		var buf [256]byte
		got := 0
		for got < len(buf) && !bytes.Contains(buf[:got], []byte("\r\n\r\n")) {
			k, err := c.Read(buf[got:])
			got += k
			if err != nil {
				break
			}
		}
		answers[i] = answer{ok: bytes.HasPrefix(buf[:got], []byte("HTTP/1.1 204 ")) && bytes.Contains(buf[:got], []byte("\r\n\r\n")),
			got: string(buf[:got]), at: time.Now()}
		if !notified.Load() {
			early.Store(i, string(buf[:got]))
		}
	}
	var dialers sync.WaitGroup
	var dialErr error
	var mu sync.Mutex
	next := make(chan int)
	for range 32 {
		dialers.Add(1)
		go func() {
			defer dialers.Done()
			for i := range next {
				c, err := net.DialTimeout("tcp", p.Addr, waitTimeout)
				if err == nil {
					_ = c.SetDeadline(begin.Add(90 * time.Second))
					_, err = io.WriteString(c, rawGET(parkPath("all,one"+strconv.Itoa(i), "")))
				}
				if err != nil {
					mu.Lock()
					dialErr = fmt.Errorf("connection %d: %w", i, err)
					mu.Unlock()
					if c != nil {
						c.Close()
					}
					continue
				}
				conns[i] = c
				readers.Add(1)
				go read(i, c)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	dialers.Wait()
	if dialErr != nil {
		t.Fatal(dialErr)
	}
	calls := 0
	for deadline := time.Now().Add(40 * time.Second); calls < n; time.Sleep(20 * time.Millisecond) {
		if calls = p.count(t, "/parked-calls"); calls < n && time.Now().After(deadline) {
			var seen []string
			early.Range(func(k, v any) bool {
				seen = append(seen, fmt.Sprintf("%d: %q", k, v))
				return len(seen) < 5
			})
			t.Fatalf("after 40s the app has parked %d of the %d requests; answered already: %v", calls, n, seen)
		}
	}
	parkedAt := time.Now()
	rss := serverRSSKB(t, p.server)
	t.Logf("%d requests parked %v after the start; server RSS %d kB = %.1f MB (%.1f kB a request over the %d kB before)",
		n, parkedAt.Sub(begin).Round(time.Millisecond), rss, float64(rss)/1024, float64(rss-idle)/float64(n), idle)
	if rss > maxRSSKB {
		if race {
			t.Logf("not held to %d kB: a -race build (set WSGO_BIN_PLAIN to a build without it)", maxRSSKB)
		} else {
			t.Errorf("server RSS with %d parked requests is %d kB, want under %d kB", n, rss, maxRSSKB)
		}
	}
	early.Range(func(k, v any) bool {
		t.Errorf("connection %d was answered before the notification: %q", k, v)
		return true
	})

	// By now every request the app has answered is parked: the server
	// parks one within moments of the app's answer, and reading the
	// memory figures took longer than that. So one notification must
	// wake them all.
	start := time.Now()
	notified.Store(true)
	if ans := p.notify(t, "/notify", "all", "http-204"); ans != strconv.Itoa(n) {
		t.Fatalf("notify_parked(\"all\") woke %s, want %d", ans, n)
	}
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatalf("not every parked request was answered within %v of the notification", waitTimeout)
	}
	var last time.Time
	bad := 0
	for i, a := range answers {
		if !a.ok {
			if bad++; bad <= 5 {
				t.Errorf("connection %d got %q, want a 204", i, a.got)
			}
		}
		if a.at.After(last) {
			last = a.at
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d connections got no 204", bad, n)
	}
	took := last.Sub(start)
	t.Logf("the last of the %d responses came %v after the notification; the test took %v", n,
		took.Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	if took > wakeWithin {
		if race {
			t.Logf("not held to %v: a -race build", wakeWithin)
		} else {
			t.Errorf("the last 204 came %v after the notification, want within %v", took, wakeWithin)
		}
	}
}

// raceReports is what the race detector of a -race build prints; panics
// is the start of a Go panic's report.
var (
	raceReports = regexp.MustCompile(`WARNING: DATA RACE`)
	panics      = regexp.MustCompile(`(?m)^panic: `)
)

// wantNoRace fails the test if the server's stderr reports a data race
// (the server under test is a -race build) or a panic.
func wantNoRace(t testing.TB, s *server) {
	t.Helper()
	stderr := s.Stderr()
	if n := len(raceReports.FindAllString(stderr, -1)); n > 0 {
		t.Errorf("the server reported %d data race(s):\n%s", n, tail(stderr))
	}
	if panics.MatchString(stderr) {
		t.Errorf("the server panicked:\n%s", tail(stderr))
	}
}

// TestParkNoDataRace: parking, each way of waking and shutting down with
// requests parked make the server (a -race build in the suite) report no
// data race. The server's other tests do not look at its stderr.
func TestParkNoDataRace(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	var answered []*pending
	for _, action := range []string{"retry", "http-204", "http-504"} {
		pd := p.park(t, parkPath("race-"+action, ""))
		p.wake(t, "race-"+action, action, "x", 1)
		answered = append(answered, pd)
	}
	drop := sendToClose(dialRaw(t, p.server), rawGET(parkPath("race-drop", "")))
	p.wake(t, "race-drop", "disconnect", "", 1)
	timedOut := p.park(t, parkPath("race-timeout", "0.1 retry"))
	pipelined := sendParked(dialRaw(t, p.server), rawGET(parkPath("race-pipe", ""))+rawGET("/"), "GET")
	p.wake(t, "race-pipe", "retry", "", 1)
	for i, pd := range append(answered, timedOut, pipelined) {
		pd.await(t, fmt.Sprintf("request %d", i))
	}
	drop.await(t, "dropped request")
	atStop := sendToClose(dialRaw(t, p.server), rawGET(parkPath("race-stop", "")))
	p.waitCalls(t, 7, waitTimeout)
	p.Signal(t, syscall.SIGTERM)
	atStop.await(t, "request parked at SIGTERM")
	p.WaitExit(t)
	wantNoRace(t, p.server)
}

// TestParkNotifyWhileParking: a thread of the app notifies a channel over
// and over while requests park on it, so that notifications come as the
// server parks them. Each request is answered once — woken (204), or, if
// it parked after the thread stopped, by its timeout (504) — none is
// dropped, and the server neither panics nor reports a data race.
func TestParkNotifyWhileParking(t *testing.T) {
	t.Parallel()
	p := startPark(t, nil)
	if ans := get(t, p.URL+"/notify-spin?ch=spin&seconds=3").String(); ans != "spinning" {
		t.Fatalf("/notify-spin: %q", ans)
	}
	const n = 200
	parked := make([]*pending, n)
	for i := range parked {
		parked[i] = p.park(t, parkPath("spin", "6 http-504"))
	}
	woken, timedOut, bad := 0, 0, 0
	for i, pd := range parked {
		pd.await(t, fmt.Sprintf("request %d", i))
		switch {
		case pd.err == nil && pd.resp.Status == 204:
			woken++
		case pd.err == nil && pd.resp.Status == 504:
			timedOut++
		default:
			if bad++; bad <= 3 {
				t.Errorf("request %d: %v %v, want a 204 or a 504", i, pd.resp, pd.err)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d requests got no 204 or 504", bad, n)
	}
	var spin string
	waitFor(t, waitTimeout, "the notifying thread to stop", func() bool {
		spin = get(t, p.URL+"/spin-woken").String()
		return strings.HasSuffix(spin, " done")
	})
	t.Logf("%d requests woken by the notifying thread, %d by their timeout; the thread woke %s", woken, timedOut, spin)
	if want := fmt.Sprintf("%d done", woken); spin != want {
		t.Errorf("the notifying thread reports %q, want %q (one wake-up per 204)", spin, want)
	}
	p.Alive(t)
	p.Signal(t, syscall.SIGTERM)
	p.WaitExit(t)
	wantNoRace(t, p.server)
}
