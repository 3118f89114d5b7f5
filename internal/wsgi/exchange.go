// Package wsgi runs queued HTTP requests through the Python app: it owns the
// worker threads, turns a request into the environ, and turns what the app
// returns into an HTTP response, following PEP 3333.
//
// It sits between the scheduler (which hands it Exchanges) and the
// http.ResponseWriter (where responses go). It does not accept
// connections, choose which request runs next, or touch CPython directly:
// those belong to the front, the scheduler and the python package.
package wsgi

import (
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"wsgo/internal/clients"
	"wsgo/internal/python"
)

// BufferedBodySize is how much of a request body the front reads before the
// app is called (the spec's 1 MiB), so that a slow upload does not hold a
// worker until it is mostly in.
const BufferedBodySize = 1 << 20

// Exchange is one request on its way through wsgo: made by the front,
// queued by the scheduler, served by a worker that writes the response to
// W and then signals Done. Until then the worker owns W; after it, the
// front logs the exchange and Releases it for reuse.
type Exchange struct {
	W http.ResponseWriter
	R *http.Request
	// Body is the start of the request body, already read; BodyMore says
	// whether the client may send more after it (readable from R.Body).
	Body     []byte
	BodyMore bool
	// LocalAddr is the listener address the request came in on.
	LocalAddr string
	// Queued is when the exchange was submitted.
	Queued time.Time
	// Client is who sent the request (nil for the server's own requests),
	// and Base its priority before its client's penalties.
	Client *clients.Client
	Base   int
	// Rank is the priority the exchange had when a worker took it from
	// the queue, at Taken (zero when no worker took it), for the access
	// log and the queue wait metric. Set by the queue (see
	// scheduler.Queue.Taken).
	Rank  int
	Taken time.Time

	done chan struct{}

	// Filled in by the worker for the access log.
	Status  int
	Written int64
	Worker  int
	// Aborted is set when the response could not be completed (the app
	// failed after its headers went out, or the client went away): the
	// front drops the connection rather than let the client take a
	// truncated body for a whole one.
	Aborted bool

	// Control holds the response headers meant for wsgo rather than the
	// client (X-WSGo-*, X-Sendfile, X-Accel-Redirect); they are never
	// sent. Nil when the app set none.
	Control http.Header
	// HandOff is set when the app handed its response back to the server
	// (X-Sendfile, X-Accel-Redirect, X-WSGo-Park): the worker sent
	// nothing, the app's status is in Status and its other headers are in
	// W.Header(), and the front completes the response, so that no worker
	// waits on the client.
	HandOff HandOff
	// NoPark makes the worker ignore X-WSGo-Park: a retried request
	// cannot park again.
	NoPark bool

	// Record, when set by the front, is asked once the status and headers
	// are known whether to keep a copy of the body (for the response
	// cache). The copy stops, and is dropped, past MaxRecorded bytes.
	Record    func(status int, header, control http.Header) bool
	recorded  []byte
	recording bool

	bodyPos      int
	bodyBuf      *[]byte // Body's pooled backing array, if any
	bodyTooLarge bool
	declared     int64 // Content-Length the app set, or -1
	flusher      *http.ResponseController
}

var exchanges = sync.Pool{New: func() any { return &Exchange{done: make(chan struct{}, 1)} }}

// NewExchange prepares an exchange for r, which came in at localAddr and
// is queued at now.
func NewExchange(w http.ResponseWriter, r *http.Request, localAddr string, now time.Time) *Exchange {
	ex := exchanges.Get().(*Exchange)
	*ex = Exchange{W: w, R: r, LocalAddr: localAddr, Queued: now, Worker: -1, done: ex.done}
	return ex
}

// HandOff is a response the app handed back to the server.
type HandOff struct {
	Kind HandOffKind
	// Target is X-Sendfile's file path, X-Accel-Redirect's URI path or
	// X-WSGo-Park's channel list.
	Target string
}

// HandOffKind says what the app handed back.
type HandOffKind uint8

const (
	NoHandOff     HandOffKind = iota
	SendFile                  // X-Sendfile
	AccelRedirect             // X-Accel-Redirect
	Park                      // X-WSGo-Park
)

// MaxRecorded is the largest body Record may keep: the response cache
// stores nothing bigger (the spec's 1 MB).
const MaxRecorded = 1 << 20

// Recorded returns the body kept because Record asked for it, and whether
// it is the whole response as the client received it.
func (ex *Exchange) Recorded() ([]byte, bool) {
	complete := ex.recording && !ex.Aborted &&
		(ex.declared < 0 || ex.declared == int64(len(ex.recorded)))
	return ex.recorded, complete
}

// record keeps a copy of body bytes sent to the client, while Record wants
// them and they fit.
func (ex *Exchange) record(p []byte) {
	if !ex.recording {
		return
	}
	if len(ex.recorded)+len(p) > MaxRecorded {
		ex.recording, ex.recorded = false, nil
		return
	}
	ex.recorded = append(ex.recorded, p...)
}

// Priority ranks the exchange in the queue at the time now.
func (ex *Exchange) Priority(now time.Time) int {
	if ex.Client == nil {
		return ex.Base
	}
	return ex.Client.Priority(ex.Base, now)
}

// Done receives once, when the worker has finished with the exchange.
func (ex *Exchange) Done() <-chan struct{} { return ex.done }

// Release returns a done exchange for reuse; it must not be used after.
func (ex *Exchange) Release() {
	if ex.bodyBuf != nil {
		bodyPools[poolClass(cap(*ex.bodyBuf))].Put(ex.bodyBuf)
	}
	*ex = Exchange{done: ex.done}
	exchanges.Put(ex)
}

// Body buffers are pooled by size class, powers of two from 4 KiB to
// BufferedBodySize, so that a steady stream of uploads does not keep the
// garbage collector busy with a fresh buffer each.
const minBodyClass = 12 // 4 KiB

var bodyPools [21 - minBodyClass]sync.Pool // up to 1 MiB (1<<20)

// poolClass is the index of the smallest class holding n bytes.
func poolClass(n int) int {
	c := 0
	for 1<<(c+minBodyClass) < n {
		c++
	}
	return c
}

// BodyBuffer returns a buffer of length n (at most BufferedBodySize) for
// the request body, which Release recycles.
func (ex *Exchange) BodyBuffer(n int) []byte {
	c := poolClass(n)
	bp, _ := bodyPools[c].Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 1<<(c+minBodyClass))
		bp = &b
	}
	ex.bodyBuf = bp
	return (*bp)[:n]
}

// finish hands the exchange back to the front. Nothing of it may be
// touched after.
func (ex *Exchange) finish() { ex.done <- struct{}{} }

// Refuse answers the exchange without running the app (server overloaded,
// shutting down) and marks it done.
func (ex *Exchange) Refuse(status int) {
	ex.plainError(status)
	ex.finish()
}

// StatusClientClosed is logged for a request whose client went away before
// a worker took it (nginx's 499); nothing is sent.
const StatusClientClosed = 499

// Abandon marks done, without an answer, an exchange whose client has
// gone; the front drops its connection.
func (ex *Exchange) Abandon() {
	ex.Status = StatusClientClosed
	ex.Aborted = true
	ex.finish()
}

// probeAfter is how long a request must have waited in the queue before a
// worker asks its connection whether the client is still there. Sooner,
// the system call costs more than running the app for a client that left
// in that moment would.
const probeAfter = 10 * time.Millisecond

// clientGone reports whether the client of a request a worker has just
// taken from the queue has left. net/http tells by ending the request's
// context; wsgo's HTTP/1 server does not watch the connection while a
// request waits, so a request that waited long enough asks it.
func (ex *Exchange) clientGone() bool {
	if ex.R.Context().Err() != nil {
		return true
	}
	prober, ok := ex.W.(peerProber)
	return ok && ex.Taken.Sub(ex.Queued) >= probeAfter && prober.PeerClosed()
}

// peerProber is a ResponseWriter that can tell whether its client has
// closed the connection (http1's).
type peerProber interface{ PeerClosed() bool }

// plainError sends a short text response for status.
func (ex *Exchange) plainError(status int) {
	h := ex.W.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	body := http.StatusText(status) + "\n"
	ex.W.WriteHeader(status)
	n, _ := io.WriteString(ex.W, body)
	ex.Status = status
	ex.Written = int64(n)
}

// readBody serves wsgi.input: the buffered start of the body first, then
// the rest from the client.
func (ex *Exchange) readBody(p []byte) (int, error) {
	if ex.bodyPos < len(ex.Body) {
		n := copy(p, ex.Body[ex.bodyPos:])
		ex.bodyPos += n
		return n, nil
	}
	if !ex.BodyMore {
		return 0, io.EOF
	}
	n, err := ex.R.Body.Read(p)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		ex.bodyTooLarge = true
		return n, python.ErrBodyTooLarge
	}
	return n, err
}
