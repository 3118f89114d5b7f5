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
)

// Handler is the http.Handler that feeds the scheduler.
type Handler struct {
	Queue *scheduler.Queue[*wsgi.Exchange]
	// MaxBodySize, when positive, is the largest request body accepted;
	// larger ones get 413 without the app being called.
	MaxBodySize int64
	Access      *accesslog.Logger
}

type localAddrKey struct{}

// NewServer returns an http.Server for h with wsgo's time limits. Each
// connection's local address is formatted once, for SERVER_NAME/PORT.
func NewServer(h http.Handler, errorLog *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: headerTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(errorLog.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, localAddrKey{}, c.LocalAddr().String())
		},
	}
}

// ServeHTTP queues the request for a worker and waits until it is answered.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	local, _ := r.Context().Value(localAddrKey{}).(string)
	ex := wsgi.NewExchange(w, r, local)
	if status := h.bufferBody(ex); status != 0 {
		ex.Refuse(status)
	} else if !h.Queue.Submit(ex) {
		ex.Refuse(http.StatusServiceUnavailable)
	}
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
	body, more, err := readUpTo(r.Body, r.ContentLength, wsgi.BufferedBodySize)
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
// unknown), and reports whether more may follow.
func readUpTo(body io.Reader, length int64, limit int) ([]byte, bool, error) {
	if length >= 0 {
		n := min(length, int64(limit))
		buf := make([]byte, n)
		_, err := io.ReadFull(body, buf)
		return buf, length > n, err
	}
	buf := make([]byte, 0, 16<<10)
	for len(buf) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):min(cap(buf), limit)])
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
