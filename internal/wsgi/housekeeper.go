package wsgi

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"wsgo/internal/python"
)

// stuckExitStatus is how a process whose every worker is stuck exits, so
// that the supervisor knows to start a fresh one.
const stuckExitStatus = 3

// housekeeper is the process's own Python thread, next to the workers. It
// enforces --request-timeout and runs the diagnostics that need the GIL.
//
// A request running past the timeout gets wsgo.RequestTimeoutException
// raised in its thread (its client then gets 502); a request still queued
// past it is answered 504. A worker still on the same request one more
// timeout after the exception is stuck; when every worker is stuck the
// process exits, since it can serve nothing.
//
// It has its own thread and Python thread state because raising an
// exception in another thread, or reading its stack, needs the GIL.
type housekeeper struct {
	pool    *Pool
	timeout time.Duration
	log     *slog.Logger
	thread  *python.Thread
	calls   chan func() // run on the housekeeper's thread
	stop    chan struct{}
	done    chan struct{}
}

func (h *housekeeper) run(ready chan<- struct{}) {
	defer close(h.done)
	runtime.LockOSThread()
	h.thread = python.NewThread()
	defer h.thread.Close()
	close(ready)

	var tick <-chan time.Time
	if h.timeout > 0 {
		t := time.NewTicker(min(max(h.timeout/10, 10*time.Millisecond), 250*time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	interrupted := make(map[*worker]uint64) // worker -> the request it was interrupted in
	stuck := make(map[*worker]bool)
	for {
		select {
		case <-h.stop:
			return
		case call := <-h.calls:
			call()
		case now := <-tick:
			h.enforce(now, interrupted, stuck)
		}
	}
}

// enforce applies the timeout to every worker and the queue.
func (h *housekeeper) enforce(now time.Time, interrupted map[*worker]uint64, stuck map[*worker]bool) {
	for _, w := range h.pool.workers {
		id, started := w.running()
		if started.IsZero() {
			delete(interrupted, w)
			delete(stuck, w)
			continue
		}
		elapsed := now.Sub(started)
		if elapsed < h.timeout {
			continue
		}
		if interrupted[w] != id {
			if h.thread.Interrupt(w.thread, id) {
				interrupted[w] = id
				h.pool.stats.timeouts.Add(1)
				h.log.Warn("request timed out; raising RequestTimeoutException in its worker",
					"worker", w.thread.ID(), "running", elapsed.Round(time.Millisecond))
			}
		} else if elapsed >= 2*h.timeout && !stuck[w] {
			stuck[w] = true
			h.log.Error("worker is stuck: it has not come back from a timed-out request",
				"worker", w.thread.ID(), "running", elapsed.Round(time.Millisecond),
				"stuck", len(stuck), "workers", len(h.pool.workers))
		}
	}
	h.pool.stats.stuck.Store(int64(len(stuck)))
	if len(stuck) == len(h.pool.workers) {
		h.log.Error("every worker is stuck; exiting so that a fresh process can take over")
		os.Exit(stuckExitStatus)
	}
	for _, ex := range h.pool.queue.DropWhile(h.expired) {
		ex.Refuse(http.StatusGatewayTimeout)
	}
}

// expired reports whether ex has waited in the queue past the timeout.
func (h *housekeeper) expired(ex *Exchange) bool {
	return time.Since(ex.Queued) >= h.timeout
}

// call runs fn on the housekeeper's thread and waits for it. It reports
// false, without running fn, once the housekeeper has stopped (the pool is
// done, Python is about to end).
func (h *housekeeper) call(fn func()) bool {
	done := make(chan struct{})
	select {
	case h.calls <- func() { fn(); close(done) }:
	case <-h.done:
		return false
	}
	<-done
	return true
}

// PythonMemory returns Python's memory figures, read on the housekeeper's
// thread; false once the pool has stopped, or when they cannot be read.
func (p *Pool) PythonMemory() (python.Memory, bool) {
	var m python.Memory
	var err error
	if !p.house.call(func() { m, err = p.house.thread.Memory() }) {
		return m, false
	}
	return m, err == nil
}

// DumpStacks writes, for SIGUSR1, what every worker is doing: the request
// it serves and for how long, and its Python stack.
func (p *Pool) DumpStacks(out io.Writer, label string) {
	var b strings.Builder
	fmt.Fprintf(&b, "wsgo: %s: stacks of %d workers\n", label, len(p.workers))
	p.house.call(func() {
		for _, w := range p.workers {
			id, started := w.running()
			if r := w.request.Load(); r != nil && !started.IsZero() {
				fmt.Fprintf(&b, "--- worker %d: request %d, %s %s, running %v\n", w.thread.ID(), id,
					r.Method, r.RequestURI, time.Since(started).Round(time.Millisecond))
			} else {
				fmt.Fprintf(&b, "--- worker %d: idle\n", w.thread.ID())
			}
			b.WriteString(p.house.thread.Stack(w.thread))
		}
	})
	io.WriteString(out, b.String()) //nolint:errcheck // a diagnostic with nowhere else to go
}

// Report writes, for SIGUSR2, the pool's counts and memory figures.
func (p *Pool) Report(out io.Writer, label string) {
	var pyMem string
	p.house.call(func() { pyMem = p.house.thread.MemoryReport() })
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	s := p.Stats()
	fmt.Fprintf(out, "wsgo: %s: requests=%d errors=%d timeouts=%d stuck=%d queue=%d workers=%d go_heap_kib=%d %s\n",
		label, s.Requests, s.Errors, s.Timeouts, s.Stuck, p.queue.Len(), s.Workers, mem.HeapAlloc>>10, pyMem)
}
