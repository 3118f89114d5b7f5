package wsgi

import (
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"time"

	"wsgo/internal/python"
)

// stuckExitStatus is how a process whose every worker is stuck exits, so
// that whoever started it knows to start a fresh one.
const stuckExitStatus = 3

// monitor enforces --request-timeout. A request running past it gets
// wsgo.RequestTimeoutException raised in its thread (its client then gets
// 502); a request still queued past it is answered 504. A worker still on
// the same request one more timeout after the exception is stuck; when
// every worker is stuck the process exits, since it can serve nothing.
//
// It runs on its own OS thread with its own Python thread state, because
// raising an exception in another thread needs the GIL.
type monitor struct {
	pool    *Pool
	timeout time.Duration
	log     *slog.Logger
	stop    chan struct{}
	done    chan struct{}
}

func (m *monitor) run() {
	defer close(m.done)
	runtime.LockOSThread()
	thread := python.NewThread()
	defer thread.Close()

	tick := time.NewTicker(min(max(m.timeout/10, 10*time.Millisecond), 250*time.Millisecond))
	defer tick.Stop()
	interrupted := make(map[*worker]uint64) // worker -> the request it was interrupted in
	stuck := make(map[*worker]bool)
	for {
		select {
		case <-m.stop:
			return
		case now := <-tick.C:
			for _, w := range m.pool.workers {
				id, started := w.running()
				if started.IsZero() {
					delete(interrupted, w)
					delete(stuck, w)
					continue
				}
				elapsed := now.Sub(started)
				if elapsed < m.timeout {
					continue
				}
				if interrupted[w] != id {
					if thread.Interrupt(w.thread, id) {
						interrupted[w] = id
						m.log.Warn("request timed out; raising RequestTimeoutException in its worker",
							"worker", w.thread.ID(), "running", elapsed.Round(time.Millisecond))
					}
				} else if elapsed >= 2*m.timeout && !stuck[w] {
					stuck[w] = true
					m.log.Error("worker is stuck: it has not come back from a timed-out request",
						"worker", w.thread.ID(), "running", elapsed.Round(time.Millisecond),
						"stuck", len(stuck), "workers", len(m.pool.workers))
				}
			}
			if len(stuck) == len(m.pool.workers) {
				m.log.Error("every worker is stuck; exiting so that a fresh process can take over")
				os.Exit(stuckExitStatus)
			}
			for _, ex := range m.pool.queue.DropWhile(m.expired) {
				ex.Refuse(http.StatusGatewayTimeout)
			}
		}
	}
}

// expired reports whether ex has waited in the queue past the timeout.
func (m *monitor) expired(ex *Exchange) bool {
	return time.Since(ex.Queued) >= m.timeout
}
