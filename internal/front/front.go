// Package front is wsgo's HTTP side: the net/http server, the checks a
// request must pass before it may cost a Python worker anything, buffering
// the start of its body, and the access log line once it is answered.
//
// It owns the connection and its time limits. It does not decide which
// request runs next (the scheduler does) or how a response is built (the
// wsgi package does); it hands each request over as a wsgi.Exchange and
// waits for it to be done.
package front

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"wsgo/internal/accesslog"
	"wsgo/internal/scheduler"
	"wsgo/internal/wsgi"
)

// Time limits of the HTTP side, as the spec gives them. The body and write
// limits are set per request, so that they apply only where there is a
// body to read or a response to write.
const (
	headerTimeout   = 2 * time.Second
	bodyReadTimeout = 600 * time.Second
	writeTimeout    = 3600 * time.Second
	idleTimeout     = 60 * time.Second
	// MaxHeaderBytes bounds the request line and headers together; beyond
	// it the client gets 431.
	MaxHeaderBytes = 64 << 10
	// drainGrace is how long a stopping server waits for keep-alive
	// connections to bring one more request (answered with "Connection:
	// close") before closing those still idle.
	drainGrace = time.Second
)

// Handler is the http.Handler that feeds the scheduler.
type Handler struct {
	Queue *scheduler.Queue[*wsgi.Exchange]
	// MaxBodySize, when positive, is the largest request body accepted;
	// larger ones get 413 without the app being called.
	MaxBodySize int64
	Access      *accesslog.Logger

	draining atomic.Bool
}

// connKey keys a connection's connInfo in its requests' contexts.
type connKey struct{}

// connInfo is what a worker needs of the connection beyond net/http's
// view: its local address, formatted once, and the TCP connection itself
// for streamed body frames.
type connInfo struct {
	local string
	tcp   *net.TCPConn
}

// Server is the HTTP server of a worker process.
type Server struct {
	http    *http.Server
	handler *Handler
	conns   atomic.Int64 // open connections
}

// NewServer returns a Server for h with wsgo's time limits. Each
// connection's local address is formatted once, for SERVER_NAME/PORT.
func NewServer(h *Handler, errorLog *slog.Logger) *Server {
	s := &Server{handler: h}
	s.http = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(errorLog.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			tcp, _ := c.(*net.TCPConn)
			return context.WithValue(ctx, connKey{}, &connInfo{local: c.LocalAddr().String(), tcp: tcp})
		},
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				s.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.conns.Add(-1)
			}
		},
	}
	return s
}

// Serve accepts connections on ln until Drain.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(ln)
	if s.handler.draining.Load() {
		return nil
	}
	return err
}

// Drain stops the server without the keep-alive race. Closing an idle
// keep-alive connection races with a client that is sending on it at that
// moment, and the client sees an error. So Drain stops accepting, answers
// every further request with "Connection: close" so that busy connections
// end cleanly after their next response, waits a moment for that, and only
// then closes what is still idle and waits for running requests (until ctx
// ends).
func (s *Server) Drain(ctx context.Context, ln net.Listener) error {
	s.handler.draining.Store(true)
	ln.Close()
	grace := time.NewTimer(drainGrace)
	defer grace.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
wait:
	for s.conns.Load() > 0 {
		select {
		case <-grace.C:
			break wait
		case <-poll.C:
		}
	}
	err := s.http.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // the listener we closed above, closed again
	}
	return err
}

// ServeHTTP queues the request for a worker and waits until it is answered.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if h.draining.Load() {
		w.Header()["Connection"] = []string{"close"}
	}
	conn, _ := r.Context().Value(connKey{}).(*connInfo)
	if conn == nil {
		conn = &connInfo{}
	}
	ex := wsgi.NewExchange(w, r, conn.local, conn.tcp, start)
	h.dispatch(ex)
	<-ex.Done()
	h.log(ex, start)
	aborted := ex.Aborted
	ex.Release()
	if aborted {
		// The response is incomplete: drop the connection so that the
		// client cannot take it for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// dispatch reads the start of ex's body and queues it, or answers it at
// once when it cannot run.
func (h *Handler) dispatch(ex *wsgi.Exchange) {
	if status := h.bufferBody(ex); status != 0 {
		ex.Refuse(status)
		return
	}
	if len(ex.Body) > 0 {
		ex.Queued = time.Now() // reading the body was not time in the queue
	}
	if !h.Queue.Submit(ex) {
		ex.Refuse(http.StatusServiceUnavailable)
	}
}

func (h *Handler) log(ex *wsgi.Exchange, start time.Time) {
	now := time.Now()
	r := ex.R
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	h.Access.Log(&accesslog.Entry{
		Client:    client,
		Method:    r.Method,
		URI:       r.RequestURI,
		Proto:     r.Proto,
		Status:    ex.Status,
		Bytes:     ex.Written,
		Referer:   r.Referer(),
		UserAgent: r.UserAgent(),
		Duration:  now.Sub(start),
		Worker:    ex.Worker,
	}, now)
}

// bufferBody reads up to wsgi.BufferedBodySize of the request body, so that
// the app starts with it in memory. It returns 0, or the status to answer
// instead of running the app.
func (h *Handler) bufferBody(ex *wsgi.Exchange) int {
	r := ex.R
	if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
		return 0
	}
	if h.MaxBodySize > 0 {
		if r.ContentLength > h.MaxBodySize {
			ex.W.Header().Set("Connection", "close")
			return http.StatusRequestEntityTooLarge
		}
		r.Body = http.MaxBytesReader(ex.W, r.Body, h.MaxBodySize)
	}
	_ = http.NewResponseController(ex.W).SetReadDeadline(time.Now().Add(bodyReadTimeout))
	body, more, err := readUpTo(ex, r.Body, r.ContentLength, wsgi.BufferedBodySize)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge
	case err != nil:
		// A malformed chunked body, or a client that went away mid-body.
		ex.W.Header().Set("Connection", "close")
		return http.StatusBadRequest
	}
	ex.Body, ex.BodyMore = body, more
	return 0
}

// readUpTo reads the first limit bytes of a body of the given length (-1:
// unknown) into ex's body buffer, and reports whether more may follow.
func readUpTo(ex *wsgi.Exchange, body io.Reader, length int64, limit int) ([]byte, bool, error) {
	if length >= 0 {
		n := min(length, int64(limit))
		buf := ex.BodyBuffer(int(n))
		_, err := io.ReadFull(body, buf)
		return buf, length > n, err
	}
	buf := ex.BodyBuffer(limit)[:0]
	for len(buf) < limit {
		n, err := body.Read(buf[len(buf):limit])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, false, nil
		}
		if err != nil {
			return nil, false, err
		}
	}
	return buf, true, nil
}
