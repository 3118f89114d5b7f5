package http1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// preHeaderSize is how much body a response holds before its headers go
// out: a handler that finishes within it gets a Content-Length, a longer
// body of unknown length is chunked. It is net/http's figure, which
// wsgi.inMemoryBody relies on.
const preHeaderSize = 2048

// response is the http.ResponseWriter of one request.
type response struct {
	c      *conn
	req    *http.Request
	body   *requestBody // nil when the request has none
	header http.Header
	status int // 0 until WriteHeader
	// declared is the Content-Length the handler set (-1: none), written
	// the body bytes it has written.
	declared, written int64
	pending           []byte // body held until the headers go, in the conn's spare buffer
	sentHeader        bool
	chunking          bool
	closeAfter        bool
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter. An informational status
// (other than 101) goes out at once, with the headers set so far; any
// other is held with the headers until the body starts or the handler
// returns. Only the first final status counts.
func (w *response) WriteHeader(code int) {
	if w.status != 0 || w.c.hijacked {
		return
	}
	if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
		w.c.out = appendStatusLine(w.c.out, code)
		w.c.out = appendHeaders(w.c.out, w.header, nil)
		w.c.out = append(w.c.out, "\r\n"...)
		w.c.flush()
		return
	}
	w.status = code
	if cl := w.header["Content-Length"]; len(cl) > 0 {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || n < 0 {
			delete(w.header, "Content-Length")
		} else {
			w.declared = n
		}
	}
}

// Write implements http.ResponseWriter. Past a declared Content-Length
// it writes nothing and fails, as net/http does.
func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.sentHeader {
		if len(w.pending)+len(p) <= preHeaderSize {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.writeHeader(false)
	}
	if err := w.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// send writes body bytes after the headers: framed when chunking, not at
// all for HEAD. A p that does not fit in the output buffer goes out at
// once, with what the buffer holds (and its chunk's end), in one
// writev(2).
func (w *response) send(p []byte) error {
	c := w.c
	if len(p) == 0 || w.req.Method == http.MethodHead {
		return nil
	}
	var end []byte
	if w.chunking {
		c.out = strconv.AppendInt(c.out, int64(len(p)), 16)
		c.out = append(c.out, "\r\n"...)
		end = crlf
	}
	if len(c.out)+len(p) > bufferSize {
		return c.flush(p, end)
	}
	c.out = append(append(c.out, p...), end...)
	return nil
}

var crlf = []byte("\r\n")

// FlushError sends what the response holds, headers first (for
// http.ResponseController).
func (w *response) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		w.writeHeader(false)
	}
	return w.c.flush()
}

// Flush implements http.Flusher.
func (w *response) Flush() { w.FlushError() }

// SetReadDeadline and SetWriteDeadline serve http.ResponseController.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// PeerClosed reports whether the client has closed the connection (or
// reset it), without waiting and without taking any byte it sent: a
// pipelined request counts as the client being there. The worker asks it
// of a request that waited in the queue (wsgi's clientGone).
func (w *response) PeerClosed() bool {
	sc, ok := socketOf(w.c.rwc)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	err = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err == unix.ECONNRESET
		return true // never wait for the socket to become readable
	})
	return closed || err != nil
}

// socketOf finds the socket under c's wrappers (TLS, or the front's for a
// connection given back), which expose it by NetConn.
func socketOf(c net.Conn) (syscall.Conn, bool) {
	for {
		if sc, ok := c.(syscall.Conn); ok {
			return sc, true
		}
		wrapper, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return nil, false
		}
		c = wrapper.NetConn()
	}
}

// Hijack implements http.Hijacker: the connection, and what was read from
// it past the request, become the caller's. Anything written before goes
// out first.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if err := c.flush(); err != nil {
		return nil, nil, err
	}
	c.hijacked = true
	c.rwc.SetDeadline(time.Time{})
	return c.rwc, bufio.NewReadWriter(c.br, bufio.NewWriter(c.rwc)), nil
}

// ReadFrom sends a body from src with the connection's own ReadFrom,
// which is sendfile(2) for a file, when the response's length and type
// are known; otherwise it copies through Write, which frames the body or
// sniffs its type from the first bytes.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	_, typed := w.header["Content-Type"]
	direct := w.declared >= 0 && typed && bodyAllowed(w.status) && w.req.Method != http.MethodHead
	rf, ok := w.c.rwc.(io.ReaderFrom)
	if !direct || !ok || w.c.hijacked {
		return io.Copy(writerOnly{w}, src)
	}
	if !w.sentHeader {
		w.writeHeader(false)
	}
	if err := w.c.flush(); err != nil {
		return 0, err
	}
	n, err := rf.ReadFrom(src)
	w.written += n
	return n, err
}

// writerOnly hides response.ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// finish completes the response after the handler returned: the headers
// if they have not gone (with a Content-Length, the handler being done),
// the held body, the chunked body's end. It reports a failed write.
func (w *response) finish() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sentHeader {
		w.writeHeader(true)
	} else if w.chunking {
		w.c.out = append(w.c.out, "0\r\n\r\n"...)
	}
	if err := w.c.flush(); err != nil {
		return err
	}
	if w.declared >= 0 && w.written < w.declared && bodyAllowed(w.status) && w.req.Method != http.MethodHead {
		w.closeAfter = true // a short body: the client would wait for the rest
	}
	return nil
}

// writeHeader puts the status line and headers in the output, and after
// them the held body. done says the handler has returned, so that the
// held body is the whole of it. The handler's header map is left as it
// is (the front reads it afterwards, for the cache): the headers that
// frame the response are the server's, written besides or instead.
func (w *response) writeHeader(done bool) {
	w.sentHeader = true
	h, req := w.header, w.req
	head := req.Method == http.MethodHead
	allowed := bodyAllowed(w.status)
	w.closeAfter = req.Close || w.c.s.stopping.Load() || HasToken(h["Connection"], "close")
	w.drainBody()
	// What the server writes, and which of the handler's headers it
	// leaves out for that.
	var omitted [3]string
	omit := append(omitted[:0], "Transfer-Encoding")
	length, contentType, connection := "", "", ""
	_, hasTE := h["Transfer-Encoding"]
	switch {
	case w.status == http.StatusNotModified:
		omit = append(omit, "Content-Type")
		fallthrough
	case !allowed:
		omit = append(omit, "Content-Length")
	case w.declared >= 0:
	case done && !hasTE && (!head || len(w.pending) > 0):
		w.declared = int64(len(w.pending))
		length = strconv.Itoa(len(w.pending))
	case head:
	case req.ProtoAtLeast(1, 1):
		w.chunking = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends with the connection
	}
	if _, typed := h["Content-Type"]; !typed && allowed && len(w.pending) > 0 && h.Get("Content-Encoding") == "" {
		contentType = http.DetectContentType(w.pending)
	}
	if wants10KeepAlive(req) && !w.closeAfter && (head || w.declared >= 0 || !allowed) {
		if _, set := h["Connection"]; !set {
			connection = "keep-alive"
		}
	} else if w.closeAfter && req.ProtoAtLeast(1, 1) {
		omit = append(omit, "Connection")
		connection = "close"
	}
	c := w.c
	c.out = appendStatusLine(c.out, w.status)
	c.out = appendHeaders(c.out, h, omit)
	if _, dated := h["Date"]; !dated {
		c.out = appendHeader(c.out, "Date", c.date.at(time.Now()))
	}
	for _, extra := range [...]struct{ name, value string }{{"Content-Length", length},
		{"Content-Type", contentType}, {"Connection", connection}} {
		if extra.value != "" {
			c.out = appendHeader(c.out, extra.name, extra.value)
		}
	}
	if w.chunking {
		c.out = append(c.out, "Transfer-Encoding: chunked\r\n"...)
	}
	c.out = append(c.out, "\r\n"...)
	held := w.pending
	w.pending = nil
	if allowed {
		w.send(held) // a failed write shows on the next one
		if done && w.chunking {
			c.out = append(c.out, "0\r\n\r\n"...)
		}
	}
	if cap(held) > 0 {
		c.spare = held[:0] // copied out: the next response holds its body there
	}
}

// drainBody reads what the handler left of the request body before the
// response goes out, as net/http does: some clients send a whole request
// before they read the response. A body left unasked for (Expect:
// 100-continue), too long or failing closes the connection instead.
func (w *response) drainBody() {
	b := w.body
	if b == nil || b.eof || w.closeAfter {
		return
	}
	if b.expectContinue && !b.continued {
		w.closeAfter = true
		return
	}
	w.c.rwc.SetReadDeadline(time.Now().Add(drainTimeout))
	_, err := io.CopyN(io.Discard, b.r, maxDrain+1)
	if err != io.EOF {
		w.closeAfter = true
		return
	}
	b.eof = true
}

// requestBody is a request's body as handlers read it: it asks for the
// body (100 Continue) when the client waits to be asked, and notes its
// end. Close only marks it closed; what is left is drained or the
// connection closed after the response.
type requestBody struct {
	r              io.ReadCloser
	w              *response
	expectContinue bool // the client waits for 100 Continue
	continued      bool // it was sent
	eof, closed    bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.expectContinue && !b.continued {
		b.continued = true
		if !b.w.sentHeader {
			b.w.c.out = append(b.w.c.out, "HTTP/1.1 100 Continue\r\n\r\n"...)
			if err := b.w.c.flush(); err != nil {
				return 0, err
			}
		}
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *requestBody) Close() error {
	b.closed = true
	return nil
}

// bodyAllowed reports whether a response with status may have a body.
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// wants10KeepAlive reports whether an HTTP/1.0 request asks to keep the
// connection.
func wants10KeepAlive(req *http.Request) bool {
	return req.ProtoMajor == 1 && req.ProtoMinor == 0 && HasToken(req.Header["Connection"], "keep-alive")
}

// hasToken reports whether a comma-separated header list holds token
// (any case).
func HasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	if text := http.StatusText(code); text != "" {
		return append(append(b, text...), "\r\n"...)
	}
	b = append(b, "status code "...)
	return append(strconv.AppendInt(b, int64(code), 10), "\r\n"...)
}

// appendHeaders writes h sorted by name, as net/http does, leaving out
// the names in omit and those without values, and putting spaces for line
// breaks in values.
func appendHeaders(b []byte, h http.Header, omit []string) []byte {
	var stack [24]string
	names := stack[:0]
	for name, values := range h {
		if len(values) > 0 && !slices.Contains(omit, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range h[name] {
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(v)
			}
			b = appendHeader(b, name, strings.TrimSpace(v))
		}
	}
	return b
}

func appendHeader[T string | []byte](b []byte, name string, value T) []byte {
	b = append(b, name...)
	b = append(b, ": "...)
	b = append(b, value...)
	return append(b, "\r\n"...)
}
