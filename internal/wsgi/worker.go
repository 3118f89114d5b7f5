package wsgi

import (
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"wsgo/internal/python"
	"wsgo/internal/scheduler"
)

// inMemoryBody is how much body can be written to a ResponseWriter without
// reaching the socket: both HTTP servers (http1 and net/http) hold the
// first 2 KiB of a response back. Up to this, a worker writes while
// keeping the GIL; beyond it, the write may wait on a slow client, so the
// GIL is released first.
const inMemoryBody = 2048

// Pool is the set of Python worker threads of this process.
type Pool struct {
	queue   *scheduler.Queue[*Exchange]
	log     *slog.Logger
	timeout time.Duration
	workers []*worker
	house   *housekeeper
	stats   stats
	wg      sync.WaitGroup
}

// stats counts what the workers have done, for SIGUSR2, --max-requests
// and the metrics.
type stats struct {
	requests, errors, timeouts, stuck atomic.Int64
}

// Requests is how many requests the workers have run.
func (p *Pool) Requests() int64 { return p.stats.requests.Load() }

// Stats is a snapshot of the pool's counts.
type Stats struct {
	// Requests run, app failures, requests interrupted by the timeout so
	// far.
	Requests, Errors, Timeouts int64
	// Workers is the pool's size, Busy how many are serving a request
	// now, Stuck how many have not come back from a timed-out one.
	Workers, Busy, Stuck int
}

// Stats returns the pool's counts now.
func (p *Pool) Stats() Stats {
	s := Stats{Requests: p.stats.requests.Load(), Errors: p.stats.errors.Load(),
		Timeouts: p.stats.timeouts.Load(), Stuck: int(p.stats.stuck.Load()), Workers: len(p.workers)}
	for _, w := range p.workers {
		if w.started.Load() != 0 {
			s.Busy++
		}
	}
	return s
}

// StartPool starts n worker threads taking exchanges from queue, and
// returns once each has its Python thread state. A request running longer
// than timeout (0: no limit) is interrupted, and one queued longer is
// answered 504. python.Start must have succeeded.
func StartPool(queue *scheduler.Queue[*Exchange], n int, timeout time.Duration, log *slog.Logger) *Pool {
	p := &Pool{queue: queue, log: log, timeout: timeout, workers: make([]*worker, n)}
	var ready sync.WaitGroup
	ready.Add(n)
	p.wg.Add(n)
	for i := range p.workers {
		go p.run(i, &ready)
	}
	ready.Wait()
	p.house = &housekeeper{pool: p, timeout: timeout, log: log,
		calls: make(chan func()), stop: make(chan struct{}), done: make(chan struct{})}
	houseReady := make(chan struct{})
	go p.house.run(houseReady)
	<-houseReady
	return p
}

// Wait returns when every worker has stopped, which happens once the queue
// is closed and drained. After it, python.Finalize may run.
func (p *Pool) Wait() {
	p.wg.Wait()
	close(p.house.stop)
	<-p.house.done
}

// run is one worker thread's life. The goroutine stays locked to its OS
// thread to the end, so that the Python thread state (and the app's
// threading.local data) always belongs to the same thread; when it
// returns, the thread exits with it.
func (p *Pool) run(i int, ready *sync.WaitGroup) {
	defer p.wg.Done()
	runtime.LockOSThread()
	thread := python.NewThread()
	// Parking takes the GIL again before the worker looks for a job, so
	// that a job never waits on a worker that is itself waiting for the GIL.
	w := &worker{thread: thread, waiter: scheduler.NewWaiter(thread.Park, thread.Unpark), log: p.log, pool: p}
	p.workers[i] = w
	ready.Done()
	for {
		ex, ok := p.queue.TryTake(w.waiter)
		if !ok {
			if !p.queue.Wait(w.waiter) {
				break
			}
			continue
		}
		switch {
		case ex.clientGone():
			// The client hung up while the request waited: running the app
			// for nobody would only delay the requests behind it.
			ex.Abandon()
		case p.timeout > 0 && time.Since(ex.Queued) >= p.timeout:
			ex.Refuse(http.StatusGatewayTimeout) // it never started: 504, not 502
		default:
			w.serve(ex)
		}
	}
	w.thread.Close()
}

// worker is the state of one worker thread. It is the python.Conn of the
// request it is serving.
type worker struct {
	thread *python.Thread
	waiter *scheduler.Waiter
	log    *slog.Logger
	pool   *Pool
	ex     *Exchange // the request being served, nil between requests
	seq    uint64    // the number of the latest request
	// What the housekeeper reads: the running request's number, when it
	// started (0 between requests) and the request itself.
	current atomic.Uint64
	started atomic.Int64
	request atomic.Pointer[http.Request]
}

// running reports the request the worker is on and since when (the zero
// time when it is between requests).
func (w *worker) running() (id uint64, since time.Time) {
	id = w.current.Load()
	if ns := w.started.Load(); ns != 0 {
		since = time.Unix(0, ns)
	}
	return id, since
}

// serve runs ex through the app and writes the response.
func (w *worker) serve(ex *Exchange) {
	ex.Worker = w.thread.ID()
	ex.declared = -1
	w.ex = ex
	w.pack(ex)
	w.seq++
	w.current.Store(w.seq)
	w.request.Store(ex.R)
	w.started.Store(time.Now().UnixNano())
	defer func() {
		w.started.Store(0)
		w.request.Store(nil)
	}()
	w.pool.stats.requests.Add(1)
	res := w.thread.Run(w.seq, w, int64(len(ex.Body)), ex.BodyMore)
	switch res.Kind() {
	case python.Failed:
		w.fail(res)
	case python.Chunks:
		w.sendChunks(res)
	case python.File:
		w.sendFile(res)
	case python.Iter:
		w.sendIter(res)
	}
	w.ex = nil
	ex.finish()
}

// pack fills the thread's request buffer from ex: the environ's fixed
// fields, then every request header.
func (w *worker) pack(ex *Exchange) {
	r := ex.R
	req := w.thread.Request()
	req.Reset()
	req.Set(python.Method, r.Method)
	req.Set(python.Path, r.URL.Path)
	req.Set(python.Query, r.URL.RawQuery)
	req.Set(python.Protocol, r.Proto)
	req.Set(python.Scheme, r.URL.Scheme)
	host, port := splitHostPort(r.RemoteAddr)
	req.Set(python.RemoteAddr, host)
	req.Set(python.RemotePort, port)
	name, sport := serverNameAndPort(r, ex.LocalAddr)
	req.Set(python.ServerName, name)
	req.Set(python.ServerPort, sport)
	if ct, ok := r.Header["Content-Type"]; ok && len(ct) > 0 {
		req.Set(python.ContentType, ct[0])
	} else {
		req.Absent(python.ContentType)
	}
	switch {
	case r.ContentLength > 0 || len(r.Header["Content-Length"]) > 0:
		req.Set(python.ContentLength, strconv.FormatInt(r.ContentLength, 10))
	case r.ContentLength < 0 && !ex.BodyMore:
		// A chunked body that fitted in the buffer: its length is known
		// now, and Django, for one, reads no body without it.
		req.Set(python.ContentLength, strconv.Itoa(len(ex.Body)))
	default:
		req.Absent(python.ContentLength)
	}
	if r.URL.Scheme == "https" {
		req.Set(python.HTTPS, "on") // CGI's convention, which some apps check
	} else {
		req.Absent(python.HTTPS)
	}
	if r.Host != "" {
		req.Header("Host", r.Host)
	}
	for name, values := range r.Header {
		switch {
		case name == "Content-Type" || name == "Content-Length":
			// Already CONTENT_TYPE and CONTENT_LENGTH, as in CGI.
		case strings.IndexByte(name, '_') >= 0:
			// "X_Forwarded_For" would become the same HTTP_X_FORWARDED_FOR
			// as "X-Forwarded-For": drop it rather than let it pose as one.
		case name == "Cookie":
			req.HeaderJoined(name, values, "; ") // RFC 9110 5.3: Cookie is the exception
		default:
			req.HeaderJoined(name, values, ", ")
		}
	}
}

// splitHostPort splits "host:port" or "[v6]:port" without allocating.
func splitHostPort(addr string) (host, port string) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return addr, ""
	}
	host, port = addr[:i], addr[i+1:]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host, port
}

// serverNameAndPort gives SERVER_NAME and SERVER_PORT as gunicorn does: from
// the Host header, with the scheme's default port when it names none, and
// from the listening socket when there is no Host at all.
func serverNameAndPort(r *http.Request, localAddr string) (string, string) {
	if r.Host == "" {
		return splitHostPort(localAddr)
	}
	host := r.Host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name, port := splitHostPort(host)
		return name, port
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if r.URL.Scheme == "https" {
		return host, "443"
	}
	return host, "80"
}

// ReadBody implements python.Conn for wsgi.input.
func (w *worker) ReadBody(p []byte) (int, error) {
	if w.ex == nil {
		return 0, io.EOF
	}
	return w.ex.readBody(p)
}

// Write implements python.Conn for the write() callable: it sends the
// headers if they have not gone, then p, at once.
func (w *worker) Write(p []byte) error {
	ex := w.ex
	if ex == nil || ex.Aborted {
		return io.ErrClosedPipe
	}
	res := w.thread.Result()
	if !w.sendHeaders(res, -1) {
		if ex.HandOff.Kind != NoHandOff {
			return nil // the server completes the response instead
		}
		return io.ErrClosedPipe
	}
	return w.stream(p)
}

// fail answers 500 (413 when the body was over --max-body-size) if nothing
// has been sent yet, or else marks the exchange aborted.
func (w *worker) fail(res python.Result) {
	ex := w.ex
	w.pool.stats.errors.Add(1)
	if res.HeadersSent() {
		ex.Aborted = true
		w.log.Error("app failed after sending its headers; connection dropped (traceback above)",
			"method", ex.R.Method, "uri", ex.R.RequestURI, "worker", ex.Worker)
		return
	}
	status := http.StatusInternalServerError
	switch {
	case res.TimedOut():
		status = http.StatusBadGateway
	case ex.bodyTooLarge:
		status = http.StatusRequestEntityTooLarge
	}
	w.log.Error("app failed (traceback above)", "status", status,
		"method", ex.R.Method, "uri", ex.R.RequestURI, "worker", ex.Worker)
	ex.plainError(status)
}

// sendChunks sends a body that the app returned whole (a list or tuple).
// Its length is known, so the response gets a Content-Length.
func (w *worker) sendChunks(res python.Result) {
	if !w.sendHeaders(res, res.Total()) {
		return
	}
	if res.Total() > inMemoryBody {
		w.thread.ReleaseGIL()
	}
	for i := 0; i < res.NumChunks(); i++ {
		if !w.write(res.Chunk(i)) {
			return
		}
	}
	// The list stays alive until the worker's next call into Python drops
	// it, which saves a call now.
}

// sendIter streams an iterable response as the app produces it.
func (w *worker) sendIter(res python.Result) {
	ex := w.ex
	if res.Status() != 0 {
		ex.declared = declaredLength(res) // known before the first chunk
	}
	for {
		// A body declared small enough to stay in memory is written with the
		// GIL kept; anything else may reach the socket, so Next lets go of it.
		smallBody := ex.declared >= 0 && ex.declared <= inMemoryBody
		chunk, ok, err := w.thread.Next(!smallBody)
		if err != nil {
			w.fail(res)
			break
		}
		if !ok {
			w.sendHeaders(res, 0)
			break
		}
		if len(chunk) == 0 {
			continue // PEP 3333: empty chunks must not hold back or send headers
		}
		if !w.sendHeaders(res, -1) {
			break
		}
		// Once the declared length is reached the response is complete: the
		// front flushes it.
		if ex.declared >= 0 && ex.Written+int64(len(chunk)) >= ex.declared {
			if !w.write(chunk) {
				break
			}
			continue
		}
		if w.stream(chunk) != nil {
			break
		}
	}
	if w.thread.Finish() != nil && !res.HeadersSent() {
		w.fail(res)
	}
}

// sendFile sends a wsgi.file_wrapper'd regular file with sendfile(2).
func (w *worker) sendFile(res python.Result) {
	ex := w.ex
	fd, offset, length := res.File()
	if w.sendHeaders(res, length) && ex.R.Method != http.MethodHead {
		if ex.declared >= 0 && ex.declared < length {
			length = ex.declared
		}
		w.thread.ReleaseGIL()
		if err := ex.copyFile(fd, offset, length); err != nil {
			ex.Aborted = true
		}
	}
	w.thread.Finish()
}

// copyFile copies length bytes at offset of the app's descriptor fd to the
// client. The descriptor is duplicated so that closing ours leaves the
// app's open; the ResponseWriter turns the copy into sendfile(2).
func (ex *Exchange) copyFile(fd int, offset, length int64) error {
	dup, err := syscall.Dup(fd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "wsgi.file_wrapper")
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	ex.recording, ex.recorded = false, nil // not worth reading the file back for the cache
	n, err := io.CopyN(ex.W, f, length)
	ex.Written += n
	return err
}

// write sends body bytes, never more than a Content-Length the app
// declared. It reports false when the client is gone.
func (w *worker) write(p []byte) bool {
	ex := w.ex
	if ex.declared >= 0 {
		if left := ex.declared - ex.Written; int64(len(p)) > left {
			p = p[:left]
		}
	}
	if len(p) == 0 {
		return true
	}
	n, err := ex.W.Write(p)
	ex.Written += int64(n)
	ex.record(p[:n])
	if err != nil {
		ex.Aborted = true
		return false
	}
	return true
}

// stream sends p to the client at once: a chunk the app produced (or gave
// to write()) that must not wait for the next.
func (w *worker) stream(p []byte) error {
	if !w.write(p) {
		return io.ErrClosedPipe
	}
	if err := w.ex.flush(); err != nil {
		w.ex.Aborted = true
		return err
	}
	return nil
}

// flush pushes what has been written so far to the client.
func (ex *Exchange) flush() error {
	if ex.flusher == nil {
		ex.flusher = http.NewResponseController(ex.W)
	}
	return ex.flusher.Flush()
}

// sendHeaders sends the app's status and headers. length is the body
// length when the server knows it (-1 if not); it becomes Content-Length
// unless the app set one. Hop-by-hop headers are the server's business
// (PEP 3333) and are dropped, except that "Connection: close" is honoured;
// headers addressed to wsgo go to ex.Control instead of the client.
// It reports whether the body is to be sent: false, having answered 500,
// when the status cannot be sent, and false when the app handed a file
// back to the server (ex.HandOff), which the front completes. It is a
// no-op once the headers have gone.
func (w *worker) sendHeaders(res python.Result, length int64) bool {
	ex := w.ex
	if res.HeadersSent() {
		return !ex.Aborted && ex.HandOff.Kind == NoHandOff
	}
	status := res.Status()
	if status < 200 {
		w.log.Error("app chose an informational status as its final one", "status", status,
			"method", ex.R.Method, "path", ex.R.URL.Path)
		ex.plainError(http.StatusInternalServerError)
		res.MarkHeadersSent()
		return false
	}
	h := ex.W.Header()
	res.Headers(func(name, value []byte) {
		key := canonicalHeader(name)
		if isControlHeader(key) {
			if ex.Control == nil {
				ex.Control = http.Header{}
			}
			ex.Control[key] = append(ex.Control[key], string(value))
			return
		}
		switch key {
		case "Content-Length":
			n, ok := parseLength(value)
			if !ok {
				w.log.Warn("app sent an invalid Content-Length; ignored", "value", string(value))
				return
			}
			ex.declared = n
		case "Connection":
			if strings.EqualFold(string(value), "close") {
				h.Set("Connection", "close")
			}
			return
		case "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer",
			"Trailers", "Transfer-Encoding", "Upgrade":
			return
		}
		h[key] = append(h[key], string(value))
	})
	if ex.Control != nil {
		if ex.HandOff = handOffOf(ex.Control, ex.NoPark); ex.HandOff.Kind != NoHandOff {
			delete(h, "Content-Length") // the file's, not the app's
			res.MarkHeadersSent()
			ex.Status = status
			return false
		}
	}
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // no Content-Type from the app: send none, don't sniff one
	}
	if ex.declared < 0 && length >= 0 && status != http.StatusNoContent && status != http.StatusNotModified {
		h["Content-Length"] = []string{strconv.FormatInt(length, 10)}
	}
	if ex.Record != nil && ex.Record(status, h, ex.Control) {
		ex.recording = true
		if n := max(ex.declared, length); n >= 0 && n <= MaxRecorded {
			ex.recorded = make([]byte, 0, n)
		}
	}
	ex.W.WriteHeader(status)
	res.MarkHeadersSent()
	ex.Status = status
	return true
}

// isControlHeader reports whether a response header (canonical name) is
// addressed to wsgo rather than the client.
func isControlHeader(key string) bool {
	return len(key) > 2 && key[0] == 'X' && key[1] == '-' &&
		(strings.HasPrefix(key, "X-Wsgo-") || key == "X-Sendfile" || key == "X-Accel-Redirect")
}

// handOffOf reads the app's control headers for a response it hands back:
// X-Sendfile, X-Accel-Redirect or (unless noPark) X-WSGo-Park, first
// found in that order.
func handOffOf(control http.Header, noPark bool) HandOff {
	if v := control.Get("X-Sendfile"); v != "" {
		return HandOff{Kind: SendFile, Target: v}
	}
	if v := control.Get("X-Accel-Redirect"); v != "" {
		return HandOff{Kind: AccelRedirect, Target: v}
	}
	if v := control.Get("X-Wsgo-Park"); v != "" && !noPark {
		return HandOff{Kind: Park, Target: v}
	}
	return HandOff{}
}

// declaredLength is the app's Content-Length among res's headers, or -1.
func declaredLength(res python.Result) int64 {
	n := int64(-1)
	res.Headers(func(name, value []byte) {
		if canonicalHeader(name) == "Content-Length" {
			if v, ok := parseLength(value); ok {
				n = v
			}
		}
	})
	return n
}

func parseLength(value []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(value), 10, 64)
	return n, err == nil && n >= 0
}

// commonHeaders maps header names, as apps usually spell them, to their
// canonical form without allocating.
var commonHeaders = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Content-Type", "Content-Length", "Cache-Control", "Set-Cookie",
		"Location", "ETag", "Last-Modified", "Expires", "Vary", "Content-Disposition",
		"Content-Encoding", "Content-Language", "X-Frame-Options", "X-Content-Type-Options",
		"Referrer-Policy", "Cross-Origin-Opener-Policy", "Strict-Transport-Security",
		"Content-Security-Policy", "Access-Control-Allow-Origin", "Connection", "Date", "Server",
		"Pragma", "Accept-Ranges", "Www-Authenticate", "Retry-After"} {
		canonical := textproto.CanonicalMIMEHeaderKey(k)
		m[k] = canonical
		m[strings.ToLower(k)] = canonical
	}
	return m
}()

func canonicalHeader(name []byte) string {
	if k, ok := commonHeaders[string(name)]; ok {
		return k
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}
