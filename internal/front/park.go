package front

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"wsgo/internal/parking"
	"wsgo/internal/wsgi"
)

// A parked request must cost next to nothing, since long-polling clients
// come in thousands. So the front takes its connection away from the
// HTTP/1 server (which would keep a goroutine, its stack and 8 KB of
// buffers per connection) and keeps only the socket, the request's bytes
// for a retry, and a timer. When the request wakes, the answer is written to the socket
// (or, for a retry, the request is replayed) and the connection is handed
// back to the server through its listener, as if newly accepted, so that
// keep-alive goes on.
//
// An HTTP/2 request cannot leave its connection, which carries other
// streams: its handler waits instead (parkedStream), which costs its
// goroutine and stream, and answers in place. Both ways end in
// endParking, which decides the answer.

// parkedRequest is a request parked on its connection.
type parkedRequest struct {
	h      *Handler
	conn   net.Conn
	r      *http.Request // for the access log line, and whether to keep alive
	start  time.Time
	replay []byte // the request again, for a retry
	// pending is what the client sent after the request (pipelined).
	pending []byte
	action  parking.Action // on timeout
	// mu holds off wake and timedOut until park has set ticket and timer:
	// a notification or the timeout may come at once.
	mu     sync.Mutex
	timer  *time.Timer
	ticket *parking.Ticket
}

// park takes the connection of a request the app parked (or, on HTTP/2,
// holds its handler), and releases ex. peer is the connection's remote
// address, for a retry's client identity.
func (h *Handler) park(ex *wsgi.Exchange, peer string, start time.Time) {
	r := ex.R
	timeout, action, err := parking.ParseTimeout(ex.Control.Get("X-Wsgo-Park-Timeout"))
	if err != nil {
		h.Log.Warn("app's park timeout ignored; using the defaults", "err", err, "uri", r.RequestURI)
		timeout, action = parking.DefaultTimeout, parking.DefaultAction
	}
	channels := parking.Channels(ex.HandOff.Target)
	w, more := ex.W, ex.BodyMore
	stream := r.ProtoMajor >= 2
	var body, replay []byte
	if stream {
		body = bytes.Clone(ex.Body)
	} else {
		replay = replayRequest(r, ex.Body)
	}
	ex.Release()
	if more {
		// The app may have read part of the body the front did not keep,
		// so the request cannot be replayed.
		h.Log.Error("a request whose body is over the buffered 1 MiB cannot be parked; answered 500", "uri", r.RequestURI)
		clear(w.Header())
		http.Error(w, "request too large to park", http.StatusInternalServerError)
		h.log(r, http.StatusInternalServerError, 0, -1, start)
		return
	}
	if stream {
		ps := &parkedStream{h: h, w: w, r: r, body: body, peer: peer}
		ps.wait(channels, timeout, action, start)
		return
	}
	conn, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.Log.Error("cannot park the request: its connection cannot be taken over", "err", err, "uri", r.RequestURI)
		clear(w.Header())
		http.Error(w, "cannot park", http.StatusInternalServerError)
		h.log(r, http.StatusInternalServerError, 0, -1, start)
		return
	}
	p := &parkedRequest{h: h, conn: conn, r: r, start: start, replay: replay, action: action}
	if n := buffered.Reader.Buffered(); n > 0 {
		p.pending, _ = buffered.Reader.Peek(n)
		p.pending = bytes.Clone(p.pending)
	}
	// The conn is ours from here; nothing reads it until it is given back,
	// so a client that leaves is noticed when the request wakes.
	p.mu.Lock()
	p.ticket = h.Parking.Park(channels, p.wake)
	p.timer = time.AfterFunc(timeout, p.timedOut)
	p.mu.Unlock()
	if h.leftForShutdown(p.ticket) {
		p.timer.Stop()
		h.endParking(p, r, start, parking.Wake{Action: parking.HTTP204})
	}
}

// leftForShutdown takes t out of the lot when the server is stopping, as
// Drain's WakeAll (which may have passed before t was parked) would, and
// reports whether it did: the request is then answered 204 at once.
func (h *Handler) leftForShutdown(t *parking.Ticket) bool {
	return h.draining.Load() && h.Parking.Leave(t)
}

// timedOut wakes p with its timeout action, unless a notification came
// first.
func (p *parkedRequest) timedOut() {
	p.mu.Lock()
	ticket := p.ticket
	p.mu.Unlock()
	if p.h.Parking.Leave(ticket) {
		p.h.endParking(p, p.r, p.start, parking.Wake{Action: p.action})
	}
}

// wake is the Lot's callback: it runs on the notifier's thread (often a
// Python one, holding the GIL), so the answer goes out on a goroutine.
func (p *parkedRequest) wake(w parking.Wake) {
	p.mu.Lock()
	p.timer.Stop()
	p.mu.Unlock()
	go p.h.endParking(p, p.r, p.start, w)
}

// parkedAnswer is how a woken parked request is answered: on its bare
// connection (parkedRequest) or in its handler (parkedStream).
type parkedAnswer interface {
	// retry runs the request again, with X-WSGo-Park-Arg: arg, and
	// reports false when it cannot (the server is stopping).
	retry(arg string) bool
	// drop ends the request without an answer.
	drop()
	// reply answers with status and a body.
	reply(status int, body string)
}

// endParking ends the parking of r, parked at start, as w says, through a,
// and logs it (a retry is logged when it runs).
func (h *Handler) endParking(a parkedAnswer, r *http.Request, start time.Time, w parking.Wake) {
	status := http.StatusNoContent
	switch w.Action {
	case parking.Retry:
		if a.retry(w.Arg) {
			return
		}
		status = http.StatusServiceUnavailable
	case parking.Disconnect:
		h.log(r, statusDropped, 0, -1, start)
		a.drop()
		return
	case parking.HTTP504:
		status = http.StatusGatewayTimeout
	}
	body := ""
	if status != http.StatusNoContent {
		body = http.StatusText(status) + "\n"
	}
	a.reply(status, body)
	h.log(r, status, int64(len(body)), -1, start)
}

func (p *parkedRequest) retry(arg string) bool {
	return p.h.returnConn(p.conn, append(p.replay, p.pending...), &retry{arg: arg})
}

func (p *parkedRequest) drop() { p.conn.Close() }

// answerTimeout bounds writing a parked request's answer to its client.
const answerTimeout = 10 * time.Second

// reply writes the answer on the connection, which then goes back to the
// server unless it is to close.
func (p *parkedRequest) reply(status int, body string) {
	h := p.h
	keepAlive := p.r.ProtoAtLeast(1, 1) && !p.r.Close && !h.draining.Load()
	head := "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n" +
		"Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n"
	if body != "" {
		head += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	if !keepAlive {
		head += "Connection: close\r\n"
	}
	_ = p.conn.SetWriteDeadline(time.Now().Add(answerTimeout))
	_, err := io.WriteString(p.conn, head+"\r\n"+body)
	_ = p.conn.SetWriteDeadline(time.Time{})
	if err != nil || !keepAlive || !h.returnConn(p.conn, p.pending, nil) {
		p.conn.Close()
	}
}

// parkedStream is a parked HTTP/2 request, waiting in its handler.
type parkedStream struct {
	h    *Handler
	w    http.ResponseWriter
	r    *http.Request
	body []byte // the whole request body, for a retry
	peer string // the connection's remote address
}

// wait holds the handler until the request is woken, its timeout passes or
// its client resets the stream, and then answers it.
func (p *parkedStream) wait(channels []string, timeout time.Duration, action parking.Action, start time.Time) {
	woken := make(chan parking.Wake, 1)
	ticket := p.h.Parking.Park(channels, func(w parking.Wake) { woken <- w })
	if p.h.leftForShutdown(ticket) {
		woken <- parking.Wake{Action: parking.HTTP204}
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var w parking.Wake
	select {
	case w = <-woken:
	case <-timer.C:
		w = parking.Wake{Action: action}
		if !p.h.Parking.Leave(ticket) {
			w = <-woken // a notification came first
		}
	case <-p.r.Context().Done():
		if p.h.Parking.Leave(ticket) {
			p.h.log(p.r, wsgi.StatusClientClosed, 0, -1, start)
			return
		}
		w = <-woken // its answer goes nowhere, but is logged
	}
	p.h.endParking(p, p.r, start, w)
}

// retry runs the request again in this handler, as a replayed HTTP/1
// request would run: from the client identification on, with its body.
func (p *parkedStream) retry(arg string) bool {
	r := p.r
	r.RemoteAddr = p.peer
	r.Body = io.NopCloser(bytes.NewReader(p.body))
	p.h.serve(p.w, r, connOf(r), &retry{arg: arg}, time.Now())
	return true
}

// drop resets the stream.
func (p *parkedStream) drop() { panic(http.ErrAbortHandler) }

func (p *parkedStream) reply(status int, body string) {
	h := p.w.Header()
	clear(h) // the app's headers went with its park answer
	if p.h.draining.Load() {
		h["Connection"] = []string{"close"} // net/http sends GOAWAY
	}
	if body != "" {
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	p.w.WriteHeader(status)
	_, _ = io.WriteString(p.w, body)
}

// statusDropped is logged for a parked request whose connection was
// dropped without an answer, as nginx logs its 444.
const statusDropped = 444

// replayRequest writes r again as HTTP/1.1 bytes, with its (whole) body, so
// that the server can read it once more for a retry.
func replayRequest(r *http.Request, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(r.Method + " " + r.RequestURI + " " + r.Proto + "\r\nHost: " + r.Host + "\r\n")
	h := r.Header.Clone()
	for _, k := range []string{"Content-Length", "Transfer-Encoding", "Expect", "X-Wsgo-Park-Arg"} {
		delete(h, k)
	}
	if len(body) > 0 || r.ContentLength >= 0 && r.Method != http.MethodGet && r.Method != http.MethodHead {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// retry marks a connection given back for a parked request's retry, or
// an HTTP/2 request retried in its handler.
type retry struct{ arg string }

// returnedConn is a connection given back to the server after parking:
// it reads first what the server is to read again (the request to retry,
// and whatever the client had sent after it).
type returnedConn struct {
	net.Conn
	retry *retry
	first []byte
}

func (c *returnedConn) Read(p []byte) (int, error) {
	if len(c.first) > 0 {
		n := copy(p, c.first)
		c.first = c.first[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ReadFrom keeps sendfile(2) for files sent on the connection.
func (c *returnedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// NetConn gives the connection under the wrapper, as tls.Conn's does, for
// http1's look at the socket (PeerClosed).
func (c *returnedConn) NetConn() net.Conn { return c.Conn }

// returnedTLSConn is a returnedConn whose connection is TLS: http1 learns
// it from ConnectionState, so that the request's TLS (and its https
// scheme) is as before.
type returnedTLSConn struct {
	*returnedConn
	tls *tls.Conn
}

func (c *returnedTLSConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// returnConn hands conn back to the server, to read first from next. It
// reports false when the server no longer accepts connections.
func (h *Handler) returnConn(conn net.Conn, next []byte, rt *retry) bool {
	ln := h.listener.Load()
	if ln == nil {
		return false
	}
	rc := &returnedConn{Conn: conn, retry: rt, first: next}
	if tc, ok := conn.(*tls.Conn); ok {
		return ln.serveHTTP1(&returnedTLSConn{returnedConn: rc, tls: tc})
	}
	return ln.serveHTTP1(rc)
}

// toHTTP2 gives net/http a connection that speaks HTTP/2: a TLS one as it
// is (net/http finds it negotiated "h2"), or a plain one that opened with
// HTTP/2's preface, with the bytes read from it so far.
func (h *Handler) toHTTP2(conn net.Conn, preread []byte) {
	if len(preread) > 0 {
		conn = &returnedConn{Conn: conn, first: preread}
	}
	if ln := h.listener.Load(); ln == nil || !ln.give(conn) {
		conn.Close()
	}
}

// returnListener is the server's listeners, merged, with a way in for
// connections given back after parking or an h2c upgrade. It is net/http's
// listener, but passes every connection it accepts to http1, and takes to
// net/http only those http1 finds to speak HTTP/2.
//
// A connection it has accepted is always served, even when Close comes
// right after: the supervisor's other processes share the listening
// sockets, so a client whose connection this process accepted while
// stopping would otherwise be dropped when another process could have
// served it. So Close stops the accepting first and ends Accept only once
// every accepted connection is handed on.
type returnListener struct {
	listeners []net.Listener
	http1     func(net.Conn) // serves a connection until it ends or speaks HTTP/2
	failed    chan error     // what the listeners' Accept returned instead of a connection
	returned  chan net.Conn
	loops     sync.WaitGroup // the acceptLoops
	closing   atomic.Bool    // Close has begun: listener errors are expected
	done      chan struct{}  // Close is done: Accept ends
	abandoned chan struct{}  // net/http's Serve has returned: nobody calls Accept
	once      sync.Once
}

func newReturnListener(http1 func(net.Conn), lns ...net.Listener) *returnListener {
	l := &returnListener{listeners: lns, http1: http1, failed: make(chan error),
		returned: make(chan net.Conn), done: make(chan struct{}), abandoned: make(chan struct{})}
	l.loops.Add(len(lns))
	for _, ln := range lns {
		go l.acceptLoop(ln)
	}
	return l
}

// acceptLoop accepts connections on ln until ln fails: connections go to
// http1, errors to Accept.
func (l *returnListener) acceptLoop(ln net.Listener) {
	defer l.loops.Done()
	for {
		c, err := ln.Accept()
		if err == nil {
			go l.http1(c)
			continue
		}
		if l.closing.Load() {
			return
		}
		select {
		case l.failed <- err:
		case <-l.abandoned:
			return
		}
		if !isTemporary(err) {
			return
		}
	}
}

// serveHTTP1 starts serving c, a connection given back, and reports false
// (having closed it) once the listener is closed.
func (l *returnListener) serveHTTP1(c net.Conn) bool {
	select {
	case <-l.done:
		c.Close()
		return false
	default:
		go l.http1(c)
		return true
	}
}

func isTemporary(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Accept returns the next new or given-back connection.
func (l *returnListener) Accept() (net.Conn, error) {
	select {
	case err := <-l.failed:
		return nil, err
	case c := <-l.returned:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// give passes c to Accept, and reports false once the listener is closed.
func (l *returnListener) give(c net.Conn) bool {
	select {
	case l.returned <- c:
		return true
	case <-l.done:
		return false
	}
}

// Addr is the first listener's address.
func (l *returnListener) Addr() net.Addr { return l.listeners[0].Addr() }

// Close stops accepting and, once what was accepted is handed on, ends
// Accept.
func (l *returnListener) Close() error {
	var err error
	l.once.Do(func() {
		l.closing.Store(true)
		for _, ln := range l.listeners {
			err = errors.Join(err, ln.Close())
		}
		l.loops.Wait()
		close(l.done)
	})
	return err
}

// abandon tells the accept loops that net/http's Serve no longer takes
// connections.
func (l *returnListener) abandon() { close(l.abandoned) }
