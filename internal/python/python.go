// Package python is wsgo's only door to CPython: it starts the interpreter,
// imports the app, runs WSGI requests on worker threads, and calls the
// app's background jobs (jobs.go) on threads of their own.
//
// All cgo in wsgo lives here (python.go, jobs.go and wsgo.c). The package knows
// nothing of HTTP: it takes a request packed as strings, calls the app, and
// hands back the status, headers and body as byte slices that point into
// Python objects the worker still owns. What those bytes mean on the wire is
// the caller's business.
//
// Threads: Start and Finalize run on one OS thread; each Thread belongs to
// the OS thread that created it, and its methods must only be called there
// (lock the goroutine with runtime.LockOSThread first). A Thread keeps the
// GIL between calls until ReleaseGIL or Park, so a worker with more queued
// work pays no GIL hand-over.
package python

/*
#include <stdlib.h>
#include "wsgo.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"unsafe"
)

// Config says how to start the interpreter.
type Config struct {
	// Program is the Python executable whose installation (and pyvenv.cfg,
	// for a virtualenv) the interpreter uses; it becomes sys.executable.
	Program string
	// Argv0 becomes sys.argv[0].
	Argv0 string
	// PythonPath is put at the front of sys.path, in order.
	PythonPath []string
	// Multiprocess is the value of wsgi.multiprocess.
	Multiprocess bool
}

// ErrAppLoad is returned by Start when the app could not be imported; the
// reason has already been printed to stderr with the Python traceback.
var ErrAppLoad = errors.New("could not load the WSGI application")

// Start initialises Python, puts dir (the working directory) and
// cfg.PythonPath on sys.path, imports callable from module, and collects
// the jobs the import registered (see Jobs). It must be called on the OS
// thread that will later call Finalize. On success the GIL is released so
// that workers can take it.
func Start(cfg Config, dir, module, callable string) error {
	program := C.CString(cfg.Program)
	argv0 := C.CString(cfg.Argv0)
	defer C.free(unsafe.Pointer(program))
	defer C.free(unsafe.Pointer(argv0))
	if C.wsgo_init(program, argv0, cBool(cfg.Multiprocess)) != 0 {
		return errors.New("could not start the Python interpreter")
	}
	// Like gunicorn: the working directory first, then --pythonpath before it.
	paths := append([]string{dir}, reverse(cfg.PythonPath)...)
	for _, p := range paths {
		cp := C.CString(p)
		rc := C.wsgo_add_sys_path(cp, 1)
		C.free(unsafe.Pointer(cp))
		if rc != 0 {
			return errors.New("could not set sys.path")
		}
	}
	cm, cc := C.CString(module), C.CString(callable)
	defer C.free(unsafe.Pointer(cm))
	defer C.free(unsafe.Pointer(cc))
	if C.wsgo_load_app(cm, cc) != 0 {
		return ErrAppLoad
	}
	if err := takeJobs(); err != nil {
		return err
	}
	C.wsgo_release_main()
	return nil
}

// Finalize runs the app's atexit handlers and shuts Python down. Every
// Thread must have been closed, and the caller must be on Start's thread.
func Finalize() {
	C.wsgo_finalize()
}

// Version is the version of the Python wsgo is linked against. It needs no
// interpreter.
func Version() string {
	return C.GoString(C.wsgo_python_version())
}

func reverse(s []string) []string {
	r := make([]string, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

func init() {
	if numFields != C.WSGO_NFIELDS {
		panic("python: request fields differ between request.go and wsgo.h")
	}
}

func cBool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// Conn is a request's connection as the app sees it through wsgi.input and
// the write() callable. Its methods are called on the worker's thread while
// Python waits for them, without the GIL when they may block.
type Conn interface {
	// ReadBody reads more of the request body into p, returning io.EOF at
	// its end.
	ReadBody(p []byte) (int, error)
	// Write sends p to the client at once, after the status line and
	// headers (from the Thread's Result) if they have not gone yet.
	Write(p []byte) error
}

// ErrBodyTooLarge is what a Conn's ReadBody returns when the client sends
// more than the server accepts; the app sees an OSError that says so.
var ErrBodyTooLarge = errors.New("request body too large")

// Kind says how a response body is to be sent.
type Kind int

// The kinds of response; see Result.
const (
	Failed Kind = C.WSGO_ERROR  // the app failed before sending anything
	Chunks Kind = C.WSGO_CHUNKS // the whole body is in Result.Chunk(0..NumChunks-1)
	Iter   Kind = C.WSGO_ITER   // pull the body with Thread.Next
	File   Kind = C.WSGO_FILE   // send Result.File's descriptor
)

// Result is the outcome of Thread.Run. Its byte slices point into Python
// objects and are valid only until the next call on the same Thread.
type Result struct {
	c *C.wsgo_result
}

// Kind reports how the body must be sent.
func (r Result) Kind() Kind { return Kind(r.c.kind) }

// Status is the numeric status the app chose, or 0 if it has not called
// start_response yet.
func (r Result) Status() int { return int(r.c.status) }

// HeadersSent reports whether MarkHeadersSent has been called.
func (r Result) HeadersSent() bool { return r.c.headers_sent != 0 }

// MarkHeadersSent records that the status line is on the wire, after which
// start_response with exc_info re-raises instead of replacing headers.
func (r Result) MarkHeadersSent() { r.c.headers_sent = 1 }

// Headers calls fn for each response header, in the app's order, with
// latin-1 bytes.
func (r Result) Headers(fn func(name, value []byte)) {
	p := unsafe.Slice((*byte)(unsafe.Pointer(r.c.headers)), int(r.c.headers_len))
	for len(p) >= 4 {
		var name, value []byte
		name, p = cutPacked(p)
		value, p = cutPacked(p)
		fn(name, value)
	}
}

func cutPacked(p []byte) (field, rest []byte) {
	n := int(*(*uint32)(unsafe.Pointer(&p[0])))
	return p[4 : 4+n], p[4+n:]
}

// TimedOut reports whether the app failed with RequestTimeoutException.
func (r Result) TimedOut() bool { return r.c.timed_out != 0 }

// NumChunks is the number of body chunks of a Chunks result.
func (r Result) NumChunks() int { return int(r.c.nchunks) }

// Chunk returns body chunk i of a Chunks result.
func (r Result) Chunk(i int) []byte {
	c := unsafe.Slice(r.c.chunks, int(r.c.nchunks))[i]
	return unsafe.Slice((*byte)(unsafe.Pointer(c.data)), int(c.len))
}

// Total is the body length of a Chunks result.
func (r Result) Total() int64 { return int64(r.c.total) }

// File returns the descriptor of a File result (owned by the app's file
// object, which the Thread keeps alive until Finish), where the app's file
// stands, and how many bytes remain after that.
func (r Result) File() (fd int, offset, length int64) {
	return int(r.c.fd), int64(r.c.offset), int64(r.c.length)
}

// threads maps the ids that C passes to callbacks back to Threads.
var threads struct {
	sync.Mutex
	byID []*Thread
}

// Thread is a Python worker thread: one OS thread with its own Python thread
// state for its whole life.
type Thread struct {
	id    int
	w     *C.wsgo_worker
	res   Result
	reqid uint64
	conn  Conn
	req   Request
}

// NewThread creates a worker for the calling OS thread, which the caller
// must have locked. Start must have succeeded.
func NewThread() *Thread {
	threads.Lock()
	t := &Thread{id: len(threads.byID)}
	threads.byID = append(threads.byID, t)
	threads.Unlock()
	t.w = C.wsgo_worker_new(C.int(t.id))
	t.res = Result{C.wsgo_worker_result(t.w)}
	return t
}

func threadByID(id C.int) *Thread {
	threads.Lock()
	defer threads.Unlock()
	return threads.byID[id]
}

// ID is the worker's number, from 0, as shown in logs.
func (t *Thread) ID() int { return t.id }

// Request returns the thread's request buffer, to be filled before Run.
func (t *Thread) Request() *Request { return &t.req }

// Result is the current request's result. While the app runs, it holds the
// status and headers as soon as start_response has been called, which is
// what a Conn's Write needs.
func (t *Thread) Result() Result { return t.res }

// Interrupt raises wsgo.RequestTimeoutException in target's thread if it is
// still running request (or job run, see RunJob) reqid, and reports
// whether it did. It is called on
// t's own thread (a monitor, not a worker) and waits for the GIL. After an
// interrupted request, target releases any logging lock it still holds.
func (t *Thread) Interrupt(target *Thread, reqid uint64) bool {
	return C.wsgo_worker_interrupt(t.w, target.w, C.uint64_t(reqid)) == 1
}

// Stack returns the Python stack of target's thread, most recent call
// last. Like Interrupt it is called on t's own thread and takes the GIL.
func (t *Thread) Stack(target *Thread) string {
	return takeCString(C.wsgo_worker_stack(t.w, target.w))
}

// MemoryReport returns Python's memory figures (allocated blocks, GC
// generation counts) as "name=value" text. Called on t's own thread.
func (t *Thread) MemoryReport() string {
	return takeCString(C.wsgo_memory_report(t.w))
}

// Memory is MemoryReport's figures as numbers.
type Memory struct {
	// Blocks is sys.getallocatedblocks(): the memory blocks Python's
	// allocator holds.
	Blocks int64
	// GCCounts is gc.get_count(): the objects allocated less freed since
	// each generation's last collection.
	GCCounts [3]int64
}

// Memory returns MemoryReport's figures, read back from its text so that
// both come from one helper. Called on t's own thread.
func (t *Thread) Memory() (Memory, error) {
	return parseMemory(t.MemoryReport())
}

func parseMemory(report string) (Memory, error) {
	var m Memory
	_, err := fmt.Sscanf(report, "python_blocks=%d gc_counts=(%d, %d, %d)",
		&m.Blocks, &m.GCCounts[0], &m.GCCounts[1], &m.GCCounts[2])
	if err != nil {
		return m, fmt.Errorf("reading Python's memory report %q: %w", report, err)
	}
	return m, nil
}

// takeCString copies and frees a malloc'd C string (nil gives "").
func takeCString(p *C.char) string {
	if p == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(p))
	return C.GoString(p)
}

// Run calls the app for the request filled in through Request. id names
// the request for Interrupt and must differ from the thread's previous
// ones. bodyBuffered is how much of the body conn can return without
// waiting; more says whether the client may send more after that. It ends
// the previous request first if Finish was not called, and returns holding
// the GIL.
func (t *Thread) Run(id uint64, conn Conn, bodyBuffered int64, more bool) Result {
	t.reqid = id
	t.conn = conn
	packed := t.req.finish()
	C.wsgo_worker_run(t.w, C.uint64_t(t.reqid), (*C.char)(unsafe.Pointer(&packed[0])),
		C.int64_t(bodyBuffered), cBool(more))
	return t.res
}

// Next pulls the next body chunk of an Iter result. It returns the chunk
// (valid until the next call) and true, or nil and false at the end; err is
// set when the app failed (the traceback has been printed). With release,
// a chunk comes back with the GIL released, ready to be written to a
// client that may be slow.
func (t *Thread) Next(release bool) (chunk []byte, ok bool, err error) {
	var c C.wsgo_chunk
	switch C.wsgo_worker_next(t.w, &c, cBool(release)) {
	case 1:
		return unsafe.Slice((*byte)(unsafe.Pointer(c.data)), int(c.len)), true, nil
	case 0:
		return nil, false, nil
	default:
		return nil, false, errAppFailed
	}
}

var errAppFailed = errors.New("the application raised an exception")

// Finish ends the current request: calls the response's close() and drops
// every object of the request. It reports an error if close() raised.
func (t *Thread) Finish() error {
	rc := C.wsgo_worker_finish(t.w)
	t.conn = nil
	if rc != 0 {
		return errAppFailed
	}
	return nil
}

// ReleaseGIL lets other threads run Python, for example while this one
// writes to a slow client. Result slices stay valid.
func (t *Thread) ReleaseGIL() { C.wsgo_worker_release_gil(t.w) }

// Park finishes the current request, releases the GIL and sleeps until
// Unpark is called (at once if it already was), then takes the GIL again.
func (t *Thread) Park() {
	t.conn = nil
	C.wsgo_worker_park(t.w)
}

// Unpark wakes the thread from Park. Any goroutine may call it.
func (t *Thread) Unpark() { C.wsgo_worker_unpark(t.w) }

// Close frees the thread's Python state. The Thread must not be used again.
func (t *Thread) Close() {
	C.wsgo_worker_free(t.w)
	t.w = nil
}

//export wsgoReadBody
func wsgoReadBody(worker C.int, reqid C.uint64_t, dst *C.char, n C.int64_t) C.int64_t {
	t := threadByID(worker)
	if t.conn == nil || t.reqid != uint64(reqid) {
		return 0 // wsgi.input kept past its request: it reads as empty
	}
	p := unsafe.Slice((*byte)(unsafe.Pointer(dst)), int(n))
	got, err := io.ReadAtLeast(readerFunc(t.conn.ReadBody), p, 1)
	switch {
	case got > 0:
		return C.int64_t(got)
	case err == nil || err == io.EOF || err == io.ErrUnexpectedEOF:
		return 0
	case errors.Is(err, ErrBodyTooLarge):
		return -2
	default:
		return -1
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

//export wsgoWrite
func wsgoWrite(worker C.int, reqid C.uint64_t, data *C.char, n C.size_t) C.int {
	t := threadByID(worker)
	if t.conn == nil || t.reqid != uint64(reqid) {
		return 0
	}
	if t.conn.Write(unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n))) != nil {
		return 0
	}
	return 1
}
