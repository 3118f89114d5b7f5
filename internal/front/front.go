// Package front is wsgo's HTTP side: the net/http server, what is answered
// without Python (static files, cache hits), the checks a request must pass
// before it may cost a Python worker anything, buffering the start of its
// body, and the access log line once it is answered.
//
// It owns the connection and its time limits, and the order in which a
// request meets static files, the cache and the queue. It does not decide
// which request runs next (the scheduler does), how a response is built
// (the wsgi package does), which file a path names (static) or what may be
// stored (cache); it hands each request to the app as a wsgi.Exchange and
// waits for it to be done.
package front

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"wsgo/internal/accesslog"
	"wsgo/internal/cache"
	"wsgo/internal/clients"
	"wsgo/internal/parking"
	"wsgo/internal/scheduler"
	"wsgo/internal/static"
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
	// Static serves --static-map files and the apps' hand-offs.
	Static *static.Server
	// Cache, when set, answers from and stores responses.
	Cache *cache.Cache
	// Log receives what goes wrong outside the app.
	Log *slog.Logger
	// Clients identifies clients and ranks their requests; Blocker keeps
	// the blocks apps ask for with X-WSGo-Block.
	Clients *clients.Registry
	Blocker *clients.Blocker
	// Parking holds the requests apps park with X-WSGo-Park.
	Parking *parking.Lot

	// listener takes connections back after parking (set by Serve).
	listener *returnListener

	draining atomic.Bool
}

// connKey keys a connection's connInfo in its requests' contexts.
type connKey struct{}

// connInfo is what a worker needs of the connection beyond net/http's
// view: its local address, formatted once, and the TCP connection itself
// for streamed body frames; and, for a connection given back after
// parking, the retry its first request is.
type connInfo struct {
	local string
	tcp   *net.TCPConn
	retry *retry
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
			info := &connInfo{local: c.LocalAddr().String()}
			switch c := c.(type) {
			case *net.TCPConn:
				info.tcp = c
			case *returnedConn:
				info.tcp, info.retry = c.tcp, c.retry
			}
			return context.WithValue(ctx, connKey{}, info)
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
	s.handler.listener = newReturnListener(ln)
	err := s.http.Serve(s.handler.listener)
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
func (s *Server) Drain(ctx context.Context) error {
	s.handler.draining.Store(true)
	s.handler.listener.Close()
	// Parked requests could wait for hours: answer them now, as a timeout
	// with http-204 would, so that long-polling clients poll again
	// (elsewhere).
	s.handler.Parking.WakeAll(parking.Wake{Action: parking.HTTP204})
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

// ServeHTTP answers a request from a static file or the cache when it can,
// and otherwise queues it for a worker and waits until it is answered.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if h.draining.Load() {
		w.Header()["Connection"] = []string{"close"}
	}
	conn, _ := r.Context().Value(connKey{}).(*connInfo)
	if conn == nil {
		conn = &connInfo{}
	}
	retry := conn.retry
	if retry != nil {
		conn.retry = nil // only the connection's first request is the retry
		r.Header["X-Wsgo-Park-Arg"] = []string{retry.arg}
	} else {
		delete(r.Header, "X-Wsgo-Park-Arg") // only wsgo sets it, on a retry
	}
	addr, scheme := h.Clients.Identify(r)
	r.URL.Scheme = scheme // what the client used, for the environ and the cache key
	client := h.Clients.Get(addr, start)
	if delay, blocked := h.Blocker.Blocked(client, start); blocked {
		h.refuseBlocked(w, r, delay)
		return
	}
	if retry == nil {
		if sent, ok := h.Static.Serve(w, r); ok {
			h.log(r, sent.Status, sent.Written, -1, start)
			return
		}
	}
	var refresh *cache.Refresh
	cacheable := retry == nil && h.Cache != nil && cache.Cacheable(r)
	if cacheable {
		var hit bool
		if refresh, hit = h.fromCache(w, r, start); hit {
			return
		}
	}
	ex := h.newExchange(w, r, conn, client, start)
	ex.NoPark = retry != nil
	if cacheable && r.Method != http.MethodHead {
		ex.Record = h.Cache.Storable
	}
	client.Start()
	h.dispatch(ex)
	<-ex.Done()
	client.Finish(time.Now())
	if ex.HandOff.Kind == wsgi.Park {
		h.park(ex, start)
		return
	}
	h.finish(ex, refresh, start)
	aborted := ex.Aborted
	ex.Release()
	if aborted {
		// The response is incomplete: drop the connection so that the
		// client cannot take it for a whole one.
		panic(http.ErrAbortHandler)
	}
}

// newExchange prepares r, from client on conn, for the app; queued is
// when it enters the queue.
func (h *Handler) newExchange(w http.ResponseWriter, r *http.Request, conn *connInfo, client *clients.Client, queued time.Time) *wsgi.Exchange {
	ex := wsgi.NewExchange(w, r, conn.local, conn.tcp, queued)
	ex.Client, ex.Base = client, clients.BaseOf(r, client)
	return ex
}

// finish completes an exchange the app has answered: it sends the file the
// app handed back, stores a recorded response, ends the cache refresh the
// request was making (if any) and logs it as started at start.
func (h *Handler) finish(ex *wsgi.Exchange, refresh *cache.Refresh, start time.Time) {
	status, written := ex.Status, ex.Written
	if k := ex.HandOff.Kind; k == wsgi.SendFile || k == wsgi.AccelRedirect {
		sent, err := h.Static.ServeHandOff(ex.W, ex.R, ex.HandOff.Target, k == wsgi.AccelRedirect)
		if err != nil {
			h.Log.Error("app's file hand-off refused", "err", err, "method", ex.R.Method, "uri", ex.R.RequestURI)
		}
		status, written = sent.Status, sent.Written
	} else if body, complete := ex.Recorded(); complete {
		h.Cache.Store(ex.R, ex.Status, ex.W.Header(), ex.Control, body, time.Now())
	}
	if refresh != nil {
		refresh.Done(time.Now())
	}
	if v := ex.Control.Get("X-Wsgo-Block"); v != "" && ex.Client != nil {
		if seconds, err := strconv.ParseFloat(v, 64); err == nil && seconds > 0 {
			h.Blocker.Block(ex.Client, time.Duration(seconds*float64(time.Second)), time.Now())
		} else {
			h.Log.Warn("app sent an X-WSGo-Block that is not a positive number of seconds; ignored", "value", v)
		}
	}
	h.log(ex.R, status, written, ex.Worker, start)
}

// refuseBlocked answers a blocked client's request with an empty 429,
// after holding it for delay (unless the client goes first). It is not
// logged: the block's end logs how many were refused.
func (h *Handler) refuseBlocked(w http.ResponseWriter, r *http.Request, delay time.Duration) {
	if delay > 0 {
		hold := time.NewTimer(delay)
		select {
		case <-hold.C:
		case <-r.Context().Done():
		}
		hold.Stop()
		h.Blocker.Release()
	}
	w.Header()["Content-Length"] = []string{"0"}
	w.WriteHeader(http.StatusTooManyRequests)
}

// NewQueue returns the queue between the front and the workers: ranked by
// the spec's priorities, holding at most limit requests, the lowest ranked
// of which is answered 503 when it is full.
func NewQueue(limit int) *scheduler.Queue[*wsgi.Exchange] {
	return &scheduler.Queue[*wsgi.Exchange]{
		Priority:   (*wsgi.Exchange).Priority,
		Background: clients.BackgroundPriority,
		Limit:      limit,
		Shed: func(ex *wsgi.Exchange) {
			ex.W.Header()["Retry-After"] = []string{"1"}
			ex.Refuse(http.StatusServiceUnavailable)
		},
	}
}

// fromCache answers (and logs) r from the cache when it holds a fresh
// response, and reports whether it did. Where the cache makes r the request that
// refreshes an entry, it starts the refresh in the background after a hit
// or returns it, to be ended once r has run. When another request is
// refreshing an expired entry, it waits for that first.
func (h *Handler) fromCache(w http.ResponseWriter, r *http.Request, start time.Time) (*cache.Refresh, bool) {
	now := start
	for range 2 {
		l := h.Cache.Lookup(r, now)
		switch {
		case l.Hit != nil:
			status, n := l.Hit.Serve(w, r, now)
			if l.Refresh != nil {
				h.refreshInBackground(r, l.Refresh)
			}
			h.log(r, status, n, -1, start)
			return nil, true
		case l.Wait != nil:
			select {
			case <-l.Wait:
				now = time.Now()
			case <-r.Context().Done():
				return nil, false
			}
		default:
			return l.Refresh, false
		}
	}
	return nil, false
}

// refreshInBackground runs a copy of r, as a GET without its client, to
// renew the cache entry r was just answered from.
func (h *Handler) refreshInBackground(r *http.Request, refresh *cache.Refresh) {
	now := time.Now()
	bg := r.Clone(context.WithoutCancel(r.Context()))
	if bg.Method == http.MethodHead {
		bg.Method = http.MethodGet
	}
	conn, _ := r.Context().Value(connKey{}).(*connInfo)
	local := ""
	if conn != nil {
		local = conn.local
	}
	ex := wsgi.NewExchange(&discardWriter{header: http.Header{}}, bg, local, nil, now)
	ex.Base = clients.BasePriority
	ex.Record = h.Cache.Storable
	h.dispatch(ex)
	go func() {
		<-ex.Done()
		h.finish(ex, refresh, now)
		ex.Release()
	}()
}

// discardWriter is the ResponseWriter of a background refresh: the
// response only goes to the cache.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

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
	h.submit(ex)
}

// submit queues ex, whose body is read.
func (h *Handler) submit(ex *wsgi.Exchange) {
	if !h.Queue.Submit(ex) {
		ex.Refuse(http.StatusServiceUnavailable)
	}
}

// log writes the access log line of r, answered with status and written
// body bytes by worker (-1 for none) since start.
func (h *Handler) log(r *http.Request, status int, written int64, worker int, start time.Time) {
	now := time.Now()
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	h.Access.Log(&accesslog.Entry{
		Client:    client,
		Method:    r.Method,
		URI:       r.RequestURI,
		Proto:     r.Proto,
		Status:    status,
		Bytes:     written,
		Referer:   r.Referer(),
		UserAgent: r.UserAgent(),
		Duration:  now.Sub(start),
		Worker:    worker,
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
