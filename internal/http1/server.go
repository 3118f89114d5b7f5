// Package http1 serves HTTP/1.x on wsgo's plain TCP connections, in place
// of net/http's server. It reads each request with net/http's own parser
// (http.ReadRequest, with the checks net/http's server adds to it) and
// writes the response itself, through an http.ResponseWriter that the rest
// of wsgo uses as it would net/http's.
//
// Why not net/http: beyond parsing and writing, its server spends about
// 5 µs of CPU per request on this machine (a goroutine that reads in the
// background to notice a client leaving, a context per request, seven
// deadline changes), a sixth of a small WSGI response. This package keeps
// what wsgo needs of net/http's behaviour: keep-alive and pipelining,
// Expect: 100-continue, chunked bodies both ways, HEAD, the same answers to
// malformed requests, the request body drained (up to 256 KiB) before a
// response, Hijack, sendfile and the ResponseController methods. It leaves
// out trailers, and a request's context is not cancelled when its client
// leaves: a worker asks the socket instead (response.PeerClosed).
//
// It owns a connection from ServeConn until it closes it or the handler
// hijacks it, on both sockets: it completes a TLS handshake itself. HTTP/2
// of any kind stays with net/http: a TLS connection whose client chose
// "h2", and a plain one that opens with HTTP/2's preface (h2c), go to
// Server.HTTP2.
package http1

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Server serves HTTP/1.x connections. Its fields must be set before the
// first ServeConn.
type Server struct {
	Handler http.Handler
	// HeaderTimeout bounds the time from a request's first byte to the end
	// of its headers, IdleTimeout the wait for a keep-alive connection's
	// next request, and WriteTimeout the writing of each response.
	HeaderTimeout, IdleTimeout, WriteTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; beyond it the
	// client gets 431.
	MaxHeaderBytes int
	// ConnContext, when set, returns the context of c's requests, as
	// net/http's Server.ConnContext does.
	ConnContext func(ctx context.Context, c net.Conn) context.Context
	// HTTP2 takes over a connection that speaks HTTP/2: a TLS one whose
	// client chose "h2" by ALPN, and, when H2C is set, a plain one that
	// opens with HTTP/2's client preface, with the bytes already read from
	// it. Without H2C such a plain connection gets 505.
	HTTP2 func(c net.Conn, preread []byte)
	H2C   bool
	// ErrorLog receives handler panics.
	ErrorLog *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping atomic.Bool
}

// Time limits and sizes not worth a setting.
const (
	// bufferSize is each connection's read and write buffer.
	bufferSize = 4 << 10
	// maxDrain is how much of a request body the handler left unread is
	// read and dropped to keep the connection; beyond it, it is closed.
	maxDrain = 256 << 10
	// drainTimeout bounds that reading.
	drainTimeout = 10 * time.Second
	// lingerTime is how long a connection closed with request bytes still
	// unread stays half-open, so that the client reads the response
	// before the kernel's reset (net/http's rstAvoidanceDelay).
	lingerTime = 500 * time.Millisecond
)

// Open reports how many connections the server holds.
func (s *Server) Open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown makes every connection close after its current response,
// closes those waiting for a request, and returns when none is left or
// ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		s.mu.Lock()
		for c := range s.conns {
			if c.idle.Load() {
				c.rwc.Close() // its ServeConn sees the error and leaves
			}
		}
		n := len(s.conns)
		s.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll.C:
		}
	}
}

// conn is one connection being served.
type conn struct {
	s      *Server
	rwc    net.Conn
	remote string
	in     limitedReader
	br     *bufio.Reader
	tls    *tls.ConnectionState // nil on a plain connection
	out    []byte               // response bytes not yet written
	spare  []byte               // a response's body held before its headers (response.pending)
	// vec is flush's argument to writev(2): WriteTo consumes it, so it is
	// refilled from vecs each time.
	vec  net.Buffers
	vecs [3][]byte
	date dateBuffer
	// idle is set while the connection waits for a request, when
	// Shutdown may close it.
	idle     atomic.Bool
	hijacked bool
	// lastPost: the previous request was a POST, after which stray CRLFs
	// are skipped (RFC 9112 section 2.2 tolerance, as in net/http).
	lastPost bool
}

// limitedReader reads the connection with a byte budget, which bounds a
// request's headers.
type limitedReader struct {
	r      io.Reader
	remain int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.remain <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.remain {
		p = p[:l.remain]
	}
	n, err := l.r.Read(p)
	l.remain -= int64(n)
	return n, err
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufferSize) }}
	outs    = sync.Pool{New: func() any { b := make([]byte, 0, bufferSize); return &b }}
)

// ServeConn serves rwc until the client or the server ends it, and closes
// it unless the handler hijacked it.
func (s *Server) ServeConn(rwc net.Conn) {
	c := &conn{s: s, rwc: rwc, in: limitedReader{r: rwc, remain: 1 << 62}}
	if ra := rwc.RemoteAddr(); ra != nil {
		c.remote = ra.String()
	}
	c.br = readers.Get().(*bufio.Reader)
	c.br.Reset(&c.in)
	out := outs.Get().(*[]byte)
	c.out = (*out)[:0]
	s.track(c, true)
	defer func() {
		s.track(c, false)
		if !c.hijacked {
			rwc.Close()
			c.br.Reset(nil)
			readers.Put(c.br)
		}
		*out = c.out[:0]
		outs.Put(out)
	}()
	if !c.handshake() {
		return
	}
	if c.tls != nil && c.tls.NegotiatedProtocol == "h2" {
		c.hijacked = true // the connection is net/http's now
		s.HTTP2(rwc, nil)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if s.ConnContext != nil {
		ctx = s.ConnContext(ctx, rwc)
	}
	if s.H2C && c.tls == nil && c.opensWithPreface() {
		n := c.br.Buffered()
		preread, _ := c.br.Peek(n)
		c.hijacked = true // the connection is net/http's now
		s.HTTP2(rwc, bytes.Clone(preread))
		return
	}
	for first := true; c.awaitRequest(first); first = false {
		w, err := c.readRequest(ctx)
		if err != nil {
			c.refuse(err)
			return
		}
		keep := c.serve(w)
		if c.hijacked || !keep {
			return
		}
		c.idle.Store(true)
		if s.stopping.Load() {
			return // Shutdown may have looked before idle was set
		}
	}
}

// track adds or removes c from the server's connections.
func (s *Server) track(c *conn, add bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if add {
		if s.conns == nil {
			s.conns = map[*conn]struct{}{}
		}
		s.conns[c] = struct{}{}
		c.idle.Store(true)
	} else {
		delete(s.conns, c)
	}
}

// handshake completes a new TLS connection's handshake, within the header
// timeout (as net/http does), and notes its state; a connection given back
// after parking has its state already. It reports false, having answered
// a client that sent plain HTTP as net/http would, when the handshake
// fails.
func (c *conn) handshake() bool {
	switch tc := c.rwc.(type) {
	case *tls.Conn:
		tc.SetDeadline(time.Now().Add(c.s.HeaderTimeout))
		err := tc.Handshake()
		tc.SetDeadline(time.Time{})
		if err != nil {
			var re tls.RecordHeaderError
			if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
				io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			}
			return false
		}
		state := tc.ConnectionState()
		c.tls = &state
	case interface{ ConnectionState() tls.ConnectionState }:
		state := tc.ConnectionState()
		c.tls = &state
	}
	return true
}

// looksLikeHTTP reports whether the first bytes of what should have been a
// TLS record are an HTTP/1 request line.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// ClientPreface opens every HTTP/2 connection.
const ClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// opensWithPreface reports whether the client's first bytes are HTTP/2's
// preface. It reads only as far as they match it, so that a short HTTP/1
// request is not waited on.
func (c *conn) opensWithPreface() bool {
	c.rwc.SetReadDeadline(time.Now().Add(c.s.HeaderTimeout))
	for n := 1; ; {
		b, err := c.br.Peek(n)
		if err != nil || !strings.HasPrefix(ClientPreface, string(b)) {
			return false
		}
		if n == len(ClientPreface) {
			return true
		}
		n = min(max(c.br.Buffered(), n+1), len(ClientPreface))
	}
}

// awaitRequest waits for the first byte of the next request, and reports
// whether it came. A connection's first request must come within the
// header timeout, as with net/http; later ones within the idle timeout.
func (c *conn) awaitRequest(first bool) bool {
	if c.br.Buffered() == 0 { // else a pipelined request is there already
		wait := c.s.IdleTimeout
		if first {
			wait = c.s.HeaderTimeout
		}
		c.rwc.SetReadDeadline(time.Now().Add(wait))
		if _, err := c.br.Peek(1); err != nil {
			return false
		}
	}
	c.idle.Store(false) // (a request that comes while stopping is answered, with "Connection: close")
	return true
}

// errHeadersTooLarge stands for a request whose headers exceed
// MaxHeaderBytes.
var errHeadersTooLarge = errors.New("request headers too large")

// badRequest is a request refused with a status and a reason.
type badRequest struct {
	status int
	reason string
}

func (e *badRequest) Error() string { return e.reason }

// readRequest reads and checks the next request, and prepares its
// response.
func (c *conn) readRequest(ctx context.Context) (*response, error) {
	c.rwc.SetReadDeadline(time.Now().Add(c.s.HeaderTimeout))
	// net/http's allowance: a request's headers may take MaxHeaderBytes
	// plus one buffer, which holds whatever else was read with them.
	c.in.remain = int64(c.s.MaxHeaderBytes) + bufferSize - int64(c.br.Buffered())
	if c.lastPost {
		peek, _ := c.br.Peek(4)
		c.br.Discard(leadingCRLF(peek))
	}
	req, err := http.ReadRequest(c.br)
	if err != nil {
		if c.in.remain <= 0 {
			return nil, errHeadersTooLarge
		}
		return nil, err
	}
	c.in.remain = 1 << 62
	c.lastPost = req.Method == http.MethodPost
	if err := check(req); err != nil {
		return nil, err
	}
	c.rwc.SetReadDeadline(time.Time{})
	if c.s.WriteTimeout > 0 {
		c.rwc.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
	}
	req.RemoteAddr = c.remote
	req.TLS = c.tls
	req = req.WithContext(ctx)
	// Expect: 100-continue is honoured on HTTP/1.1 and ignored on 1.0;
	// any other expectation is refused, as net/http does.
	expect := req.Header.Get("Expect")
	if expect != "" && !HasToken(req.Header["Expect"], "100-continue") {
		return nil, &badRequest{http.StatusExpectationFailed, ""}
	}
	w := &response{c: c, req: req, header: http.Header{}, declared: -1, pending: c.spare[:0]}
	if req.Body != http.NoBody {
		w.body = &requestBody{r: req.Body, w: w, expectContinue: expect != "" && req.ProtoAtLeast(1, 1)}
		req.Body = w.body
	}
	return w, nil
}

// check applies the rules net/http's server adds to its parser's.
func check(req *http.Request) error {
	if req.ProtoMajor != 1 {
		return &badRequest{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}
	if req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != http.MethodConnect {
		return &badRequest{http.StatusBadRequest, "missing required Host header"}
	}
	if req.Host != "" && !httpguts.ValidHostHeader(req.Host) {
		return &badRequest{http.StatusBadRequest, "malformed Host header"}
	}
	for name, values := range req.Header {
		if !httpguts.ValidHeaderFieldName(name) {
			return &badRequest{http.StatusBadRequest, "invalid header name"}
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return &badRequest{http.StatusBadRequest, "invalid header value"}
			}
		}
	}
	return nil
}

func leadingCRLF(b []byte) int {
	n := 0
	for n < len(b) && (b[n] == '\r' || b[n] == '\n') {
		n++
	}
	return n
}

// refuse answers a request that could not be read, as net/http does, and
// leaves the connection to be closed. A client that went away or timed
// out gets nothing.
func (c *conn) refuse(err error) {
	status, reason := http.StatusBadRequest, ""
	var bad *badRequest
	var netErr net.Error
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &netErr) || errors.Is(err, net.ErrClosed):
		return
	case err == errHeadersTooLarge:
		status = http.StatusRequestHeaderFieldsTooLarge
	case errors.As(err, &bad):
		status, reason = bad.status, bad.reason
	case strings.HasPrefix(err.Error(), "unsupported transfer encoding"):
		// net/http's parser gives this error no type of its own.
		status = http.StatusNotImplemented
	}
	text := http.StatusText(status)
	body := strconv.Itoa(status) + " " + text
	if reason != "" {
		body += ": " + reason
	}
	c.rwc.SetWriteDeadline(time.Now().Add(time.Second))
	io.WriteString(c.rwc, "HTTP/1.1 "+strconv.Itoa(status)+" "+text+
		"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"+body)
	c.lingerClose()
}

// serve runs the handler for w and completes its response. It reports
// whether the connection may carry another request.
func (c *conn) serve(w *response) (keep bool) {
	defer func() {
		if v := recover(); v != nil {
			keep = false
			if v != http.ErrAbortHandler && c.s.ErrorLog != nil {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.ErrorLog.Error("panic serving a request", "client", c.remote, "panic", v, "stack", string(buf))
			}
		}
	}()
	var h http.Handler = c.s.Handler
	if w.req.RequestURI == "*" && w.req.Method == http.MethodOptions {
		h = optionsHandler{} // net/http's answer to "OPTIONS *"
	}
	h.ServeHTTP(w, w.req)
	if c.hijacked {
		return false
	}
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter {
		if w.body != nil && !w.body.eof {
			c.lingerClose()
		}
		return false
	}
	return true
}

// optionsHandler answers "OPTIONS *", a question about the server.
type optionsHandler struct{}

func (optionsHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Length", "0")
}

// lingerClose shuts the sending side and waits a moment before the
// connection is closed, so that request bytes left unread do not make
// the kernel reset the connection before the client has read the response.
func (c *conn) lingerClose() {
	if cw, ok := c.rwc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		time.Sleep(lingerTime)
	}
}

// flush writes c.out, then each of more, to the connection in one system
// call.
func (c *conn) flush(more ...[]byte) error {
	var err error
	switch {
	case len(more) > 0:
		c.vec = append(append(c.vecs[:0], c.out), more...)
		_, err = c.vec.WriteTo(c.rwc)
	case len(c.out) > 0:
		_, err = c.rwc.Write(c.out)
	}
	c.out = c.out[:0]
	return err
}

// dateBuffer is a formatted Date header, renewed once a second.
type dateBuffer struct {
	unix int64
	text []byte
}

func (d *dateBuffer) at(now time.Time) []byte {
	if s := now.Unix(); s != d.unix || d.text == nil {
		d.unix = s
		d.text = now.UTC().AppendFormat(d.text[:0], http.TimeFormat)
	}
	return d.text
}
