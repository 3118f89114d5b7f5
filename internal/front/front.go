// Package front is wsgo's HTTP side: the HTTP servers (package http1 for
// HTTP/1.x, net/http for HTTP/2), what is answered
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
	"crypto/tls"
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
	"wsgo/internal/http1"
	"wsgo/internal/metrics"
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
	// Access is the access log (nil: --log-format off); Metrics counts
	// each answered request (nil: no --stats-socket).
	Access  *accesslog.Logger
	Metrics *metrics.Process
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

	// listener takes connections back after parking and h2c upgrades
	// (set by Serve); h2c says whether the plain socket serves HTTP/2 too.
	listener atomic.Pointer[returnListener]
	h2c      bool

	draining atomic.Bool
}

// connKey keys a connection's connInfo in its requests' contexts.
type connKey struct{}

// connInfo is what the front and a worker need of the connection beyond
// the request: its local address, formatted once, and, for a connection
// given back after parking, the retry its first request is. An HTTP/2
// connection's streams share it, reading only.
type connInfo struct {
	local string
	retry *retry
}

// Server is the HTTP server of a worker process: wsgo's own HTTP/1.x
// server (package http1), which takes every connection, and net/http's,
// to which it passes those that speak HTTP/2.
type Server struct {
	http    *http.Server
	http1   *http1.Server
	handler *Handler
	conns   atomic.Int64 // connections open in net/http's server
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
		// HTTP/2's own default frame size, rather than net/http's 1 MiB:
		// a peer's larger frame is a FRAME_SIZE_ERROR, as h2spec expects.
		HTTP2:       &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
		ErrorLog:    slog.NewLogLogger(errorLog.Handler(), slog.LevelWarn),
		ConnContext: withConnInfo,
		ConnState: func(_ net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				s.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				s.conns.Add(-1)
			}
		},
	}
	s.http1 = &http1.Server{
		Handler:        h,
		HeaderTimeout:  headerTimeout,
		IdleTimeout:    idleTimeout,
		WriteTimeout:   writeTimeout,
		MaxHeaderBytes: MaxHeaderBytes,
		ConnContext:    withConnInfo,
		HTTP2:          h.toHTTP2,
		ErrorLog:       errorLog,
	}
	return s
}

// withConnInfo is both servers' ConnContext: it attaches what the front
// needs of connection c to its requests' context.
func withConnInfo(ctx context.Context, c net.Conn) context.Context {
	info := &connInfo{local: c.LocalAddr().String()}
	switch c := c.(type) {
	case *returnedConn:
		info.retry = c.retry
	case *returnedTLSConn:
		info.retry = c.retry
	}
	return context.WithValue(ctx, connKey{}, info)
}

// Listeners are the sockets a Server serves.
type Listeners struct {
	// HTTP is the plain socket (nil: none), which with H2C serves
	// cleartext HTTP/2 too: with prior knowledge and by "Upgrade: h2c".
	HTTP net.Listener
	H2C  bool
	// HTTPS is the socket served with TLS (nil: none), by TLS's
	// configuration: HTTP/2 where ALPN chooses it, HTTP/1.1 otherwise.
	HTTPS net.Listener
	TLS   *tls.Config
}

// Serve accepts connections on l's sockets until Drain.
func (s *Server) Serve(l Listeners) error {
	var lns []net.Listener
	if l.HTTP != nil {
		lns = append(lns, l.HTTP)
	}
	if l.HTTPS != nil {
		lns = append(lns, tls.NewListener(l.HTTPS, l.TLS))
	}
	// HTTP/2 over TLS is net/http's own, chosen by ALPN; cleartext HTTP/2
	// applies only to connections without TLS.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(l.H2C && l.HTTP != nil)
	s.http.Protocols = &protocols
	s.handler.h2c = protocols.UnencryptedHTTP2()
	s.http1.H2C = s.handler.h2c
	ln := newReturnListener(s.http1.ServeConn, lns...)
	s.handler.listener.Store(ln)
	if s.handler.draining.Load() {
		// Drain came first (Serve runs on a goroutine of its own). Close
		// waits for what was accepted to be taken by Serve, below.
		go ln.Close()
	}
	err := s.http.Serve(ln)
	ln.abandon()
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
	if ln := s.handler.listener.Load(); ln != nil {
		ln.Close()
	}
	// Parked requests could wait for hours: answer them now, as a timeout
	// with http-204 would, so that long-polling clients poll again
	// (elsewhere).
	s.handler.Parking.WakeAll(parking.Wake{Action: parking.HTTP204})
	grace := time.NewTimer(drainGrace)
	defer grace.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
wait:
	for s.conns.Load()+int64(s.http1.Open()) > 0 {
		select {
		case <-grace.C:
			break wait
		case <-poll.C:
		}
	}
	http1Done := make(chan error, 1)
	go func() { http1Done <- s.http1.Shutdown(ctx) }()
	err := s.http.Shutdown(ctx)
	if errors.Is(err, net.ErrClosed) {
		err = nil // the listener we closed above, closed again
	}
	return errors.Join(err, <-http1Done)
}

// ServeHTTP answers a request from a static file or the cache when it can,
// and otherwise queues it for a worker and waits until it is answered.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	conn := connOf(r)
	if h.h2c && h.upgradeH2C(w, r) {
		return // the request is served again, as HTTP/2's stream 1
	}
	retry := conn.retry
	if retry != nil {
		conn.retry = nil // only the connection's first request is the retry
	}
	h.serve(w, r, conn, retry, start)
}

// connOf returns what the front knows of r's connection.
func connOf(r *http.Request) *connInfo {
	if conn, _ := r.Context().Value(connKey{}).(*connInfo); conn != nil {
		return conn
	}
	return &connInfo{}
}

// serve is ServeHTTP for r, which came in on conn at start, and is a
// parked request's retry when retry is set.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, conn *connInfo, retry *retry, start time.Time) {
	if h.draining.Load() {
		w.Header()["Connection"] = []string{"close"}
	}
	if retry != nil {
		r.Header["X-Wsgo-Park-Arg"] = []string{retry.arg}
	} else {
		delete(r.Header, "X-Wsgo-Park-Arg") // only wsgo sets it, on a retry
	}
	peer := r.RemoteAddr // before Identify makes it the forwarded client
	addr, scheme := h.Clients.Identify(r)
	r.URL.Scheme = scheme // what the client used, for the environ and the cache key
	client := h.Clients.Get(addr, start)
	if delay, blocked := h.Blocker.Blocked(client, start); blocked {
		h.refuseBlocked(w, r, delay)
		return
	}
	// Files and cache hits are answered here.
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
		h.park(ex, peer, start)
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
	ex := wsgi.NewExchange(w, r, conn.local, queued)
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
	priority := accesslog.NoPriority
	if !ex.Taken.IsZero() {
		priority = ex.Rank
		h.Metrics.QueueWait(ex.Taken.Sub(ex.Queued))
	}
	h.logRanked(ex.R, status, written, ex.Worker, priority, start)
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
		Taken: func(ex *wsgi.Exchange, rank int, now time.Time) {
			ex.Rank, ex.Taken = rank, now // for the access log and the queue wait
		},
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
	ex := wsgi.NewExchange(&discardWriter{header: http.Header{}}, bg, connOf(r).local, now)
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
// body bytes by worker (-1 for none) since start, and counts it.
func (h *Handler) log(r *http.Request, status int, written int64, worker int, start time.Time) {
	h.logRanked(r, status, written, worker, accesslog.NoPriority, start)
}

// logRanked is log of a request that had priority when a worker took it
// from the queue (accesslog.NoPriority: none did).
func (h *Handler) logRanked(r *http.Request, status int, written int64, worker, priority int, start time.Time) {
	now := time.Now()
	h.Metrics.Request(r.Method, status, now.Sub(start))
	if h.Access == nil {
		return
	}
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
		Priority:  priority,
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
			closeAfter(ex)
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
		closeAfter(ex)
		return http.StatusBadRequest
	}
	ex.Body, ex.BodyMore = body, more
	return 0
}

// closeAfter closes ex's HTTP/1.x connection after its response, which
// leaves part of the request body unread. On HTTP/2, net/http discards a
// stream's unread body itself, and "Connection: close" would end every
// other stream of the connection too.
func closeAfter(ex *wsgi.Exchange) {
	if ex.R.ProtoMajor == 1 {
		ex.W.Header().Set("Connection", "close")
	}
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
