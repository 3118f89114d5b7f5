package front

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"wsgo/internal/parking"
	"wsgo/internal/wsgi"
)

// A parked request must cost next to nothing, since long-polling clients
// come in thousands. So the front takes its connection away from net/http
// (which would keep a goroutine, its stack and 10 KB of buffers per
// connection) and keeps only the socket, the request's bytes for a retry,
// and a timer. When the request wakes, the answer is written to the socket
// (or, for a retry, the request is replayed) and the connection is handed
// back to the server through its listener, as if newly accepted, so that
// keep-alive goes on.

// parkedRequest is a request parked on its connection.
type parkedRequest struct {
	h      *Handler
	conn   net.Conn
	tcp    *net.TCPConn
	r      *http.Request // for the access log line, and whether to keep alive
	start  time.Time
	replay []byte // the request again, for a retry
	// pending is what the client sent after the request (pipelined).
	pending []byte
	action  parking.Action // on timeout
	timer   *time.Timer
	ticket  *parking.Ticket
}

// park takes the connection of a request the app parked, and releases ex.
func (h *Handler) park(ex *wsgi.Exchange, start time.Time) {
	r := ex.R
	timeout, action, err := parking.ParseTimeout(ex.Control.Get("X-Wsgo-Park-Timeout"))
	if err != nil {
		h.Log.Warn("app's park timeout ignored; using the defaults", "err", err, "uri", r.RequestURI)
		timeout, action = parking.DefaultTimeout, parking.DefaultAction
	}
	channels := parking.Channels(ex.HandOff.Target)
	w, more, tcp := ex.W, ex.BodyMore, ex.Conn
	replay := replayRequest(r, ex.Body)
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
	conn, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		h.Log.Error("cannot park the request: its connection cannot be taken over", "err", err, "uri", r.RequestURI)
		clear(w.Header())
		http.Error(w, "cannot park", http.StatusInternalServerError)
		h.log(r, http.StatusInternalServerError, 0, -1, start)
		return
	}
	p := &parkedRequest{h: h, conn: conn, tcp: tcp, r: r, start: start, replay: replay, action: action}
	if n := buffered.Reader.Buffered(); n > 0 {
		p.pending, _ = buffered.Reader.Peek(n)
		p.pending = bytes.Clone(p.pending)
	}
	// The conn is ours from here; nothing reads it until it is given back,
	// so a client that leaves is noticed when the request wakes.
	p.ticket = h.Parking.Park(channels, p.wake)
	p.timer = time.AfterFunc(timeout, p.timedOut)
}

// timedOut wakes p with its timeout action, unless a notification came
// first.
func (p *parkedRequest) timedOut() {
	if p.h.Parking.Leave(p.ticket) {
		p.answer(parking.Wake{Action: p.action})
	}
}

// wake is the Lot's callback: it runs on the notifier's thread (often a
// Python one, holding the GIL), so the answer goes out on a goroutine.
func (p *parkedRequest) wake(w parking.Wake) {
	p.timer.Stop()
	go p.answer(w)
}

// answerTimeout bounds writing a parked request's answer to its client.
const answerTimeout = 10 * time.Second

// answer ends the parking as w says.
func (p *parkedRequest) answer(w parking.Wake) {
	h := p.h
	keepAlive := p.r.ProtoAtLeast(1, 1) && !p.r.Close && !h.draining.Load()
	var status int
	switch w.Action {
	case parking.Retry:
		if h.returnConn(p.conn, p.tcp, append(p.replay, p.pending...), &retry{arg: w.Arg}) {
			return // the replayed request is logged when it runs
		}
		status, keepAlive = http.StatusServiceUnavailable, false // the server is stopping
	case parking.Disconnect:
		p.conn.Close()
		h.log(p.r, statusDropped, 0, -1, p.start)
		return
	case parking.HTTP504:
		status = http.StatusGatewayTimeout
	default:
		status = http.StatusNoContent
	}
	head := "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n" +
		"Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n"
	body := ""
	if status != http.StatusNoContent {
		body = http.StatusText(status) + "\n"
		head += "Content-Type: text/plain; charset=utf-8\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	}
	if !keepAlive {
		head += "Connection: close\r\n"
	}
	_ = p.conn.SetWriteDeadline(time.Now().Add(answerTimeout))
	_, err := io.WriteString(p.conn, head+"\r\n"+body)
	_ = p.conn.SetWriteDeadline(time.Time{})
	h.log(p.r, status, int64(len(body)), -1, p.start)
	if err != nil || !keepAlive || !h.returnConn(p.conn, p.tcp, p.pending, nil) {
		p.conn.Close()
	}
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

// retry marks a connection given back for a parked request's retry.
type retry struct{ arg string }

// returnedConn is a connection given back to the server after parking:
// it reads first what the server is to read again (the request to retry,
// and whatever the client had sent after it).
type returnedConn struct {
	net.Conn
	tcp   *net.TCPConn
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

// ReadFrom keeps sendfile(2) for static files sent on the connection.
func (c *returnedConn) ReadFrom(r io.Reader) (int64, error) {
	if c.tcp != nil {
		return c.tcp.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// returnConn hands conn back to the server, to read first from next. It
// reports false when the server no longer accepts connections.
func (h *Handler) returnConn(conn net.Conn, tcp *net.TCPConn, next []byte, rt *retry) bool {
	ln := h.listener
	if ln == nil {
		return false
	}
	return ln.give(&returnedConn{Conn: conn, tcp: tcp, retry: rt, first: next})
}

// returnListener is the server's listener, with a way in for connections
// given back after parking.
type returnListener struct {
	net.Listener
	accepted chan acceptResult
	returned chan net.Conn
	done     chan struct{}
	once     sync.Once
}

type acceptResult struct {
	conn net.Conn
	err  error
}

func newReturnListener(ln net.Listener) *returnListener {
	l := &returnListener{Listener: ln, accepted: make(chan acceptResult), returned: make(chan net.Conn),
		done: make(chan struct{})}
	go l.acceptLoop()
	return l
}

// acceptLoop accepts connections for Accept, until the listener fails.
func (l *returnListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil && !isTemporary(err) {
			return
		}
	}
}

func isTemporary(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Accept returns the next new or given-back connection.
func (l *returnListener) Accept() (net.Conn, error) {
	select {
	case res := <-l.accepted:
		return res.conn, res.err
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

func (l *returnListener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}
