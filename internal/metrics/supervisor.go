package metrics

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// scrapeTimeout bounds how long a scrape waits for a worker's answer; one
// that does not answer in time (busy, or stopping) is counted with its
// previous answer, so that its counters do not seem to go back.
const scrapeTimeout = 2 * time.Second

// Supervisor is the supervisor's side: it follows the worker processes
// (told by the supervisor package's events), fetches their metrics on each
// scrape and serves the sum, and answers /healthz.
type Supervisor struct {
	processes int
	reg       *prometheus.Registry
	restarts  *prometheus.CounterVec

	mu       sync.Mutex
	workers  map[int]*workerLink // by pid, while its channel is open
	started  int                 // workers started so far, to order them
	retired  []*dto.MetricFamily // the summed final counts of exited workers
	states   map[int]*procState  // by pid, while the process lives
	stopping bool                // the supervisor is shutting down
}

// procState is what /healthz needs to know of one worker process.
type procState struct {
	slot               int
	accepting, stopped bool
}

// workerLink is the supervisor's end of one worker's channel.
type workerLink struct {
	order   int
	conn    net.Conn
	mu      sync.Mutex
	last    []*dto.MetricFamily // its latest answer
	updated chan struct{}       // closed, and replaced, at each answer
	gone    chan struct{}       // closed when the channel ends
}

// NewSupervisor returns the supervisor side for processes worker slots.
// reasons are the values wsgo_worker_restarts_total's label may take, so
// that each series exists before its first restart.
func NewSupervisor(processes int, reasons []string) *Supervisor {
	s := &Supervisor{processes: processes, reg: prometheus.NewRegistry(),
		workers: map[int]*workerLink{}, states: map[int]*procState{}}
	s.restarts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgo_worker_restarts_total",
		Help: "Worker processes started to replace another, by reason: exit (it exited or crashed), recycle (--max-requests, --reload-on-rss), reload (SIGHUP, --reload).",
	}, []string{"reason"})
	for _, r := range reasons {
		s.restarts.WithLabelValues(r)
	}
	s.reg.MustRegister(s.restarts, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "wsgo_processes_accepting",
		Help: "Worker process slots with a process accepting connections.",
	}, func() float64 { return float64(s.accepting()) }))
	return s
}

// Started records a new worker process pid in slot, replacing another for
// reason ("" for the first ones), with stats its channel (nil for none).
func (s *Supervisor) Started(pid, slot int, reason string, stats net.Conn) {
	if reason != "" {
		s.restarts.WithLabelValues(reason).Inc()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.states[pid] = &procState{slot: slot}
	if stats == nil {
		return
	}
	s.started++
	w := &workerLink{order: s.started, conn: stats, updated: make(chan struct{}), gone: make(chan struct{})}
	s.workers[pid] = w
	go s.read(pid, w)
}

// Ready records that worker pid accepts connections.
func (s *Supervisor) Ready(pid int) { s.setState(pid, func(p *procState) { p.accepting = true }) }

// Stopping records that worker pid was told to stop, and accepts no more.
func (s *Supervisor) Stopping(pid int) { s.setState(pid, func(p *procState) { p.stopped = true }) }

// Exited records that worker pid is gone.
func (s *Supervisor) Exited(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, pid)
}

// ShuttingDown records that the supervisor is stopping every worker.
func (s *Supervisor) ShuttingDown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping = true
}

func (s *Supervisor) setState(pid int, change func(*procState)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.states[pid]; p != nil {
		change(p)
	}
}

// accepting counts the slots with a process that accepts connections.
func (s *Supervisor) accepting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	slots := map[int]bool{}
	for _, p := range s.states {
		if p.accepting && !p.stopped {
			slots[p.slot] = true
		}
	}
	return len(slots)
}

// read takes a worker's answers until its channel ends, then keeps its
// last counts.
func (s *Supervisor) read(pid int, w *workerLink) {
	for {
		families, err := readFrame(w.conn)
		if err != nil {
			break
		}
		w.mu.Lock()
		w.last = families
		close(w.updated)
		w.updated = make(chan struct{})
		w.mu.Unlock()
	}
	w.conn.Close()
	close(w.gone)
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.workers, pid)
	m := newMerger()
	m.add(s.retired, true)
	m.add(w.snapshot(), true)
	s.retired = m.result()
}

func (w *workerLink) snapshot() []*dto.MetricFamily {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// fetch asks the worker for its counts and returns its answer, or, if
// none comes by deadline, its previous one.
func (w *workerLink) fetch(deadline time.Time) []*dto.MetricFamily {
	w.mu.Lock()
	updated := w.updated
	w.mu.Unlock()
	_ = w.conn.SetWriteDeadline(deadline)
	if _, err := w.conn.Write([]byte{askSnapshot}); err == nil {
		wait := time.NewTimer(time.Until(deadline))
		defer wait.Stop()
		select {
		case <-updated:
		case <-w.gone:
		case <-wait.C:
		}
	}
	return w.snapshot()
}

// Gather implements prometheus.Gatherer: the exited workers' counts, each
// live worker's (asked for now, all at once), and the supervisor's own.
func (s *Supervisor) Gather() ([]*dto.MetricFamily, error) {
	s.mu.Lock()
	retired := s.retired
	live := make([]*workerLink, 0, len(s.workers))
	for _, w := range s.workers {
		live = append(live, w)
	}
	s.mu.Unlock()
	slices.SortFunc(live, func(a, b *workerLink) int { return a.order - b.order })

	answers := make([][]*dto.MetricFamily, len(live))
	deadline := time.Now().Add(scrapeTimeout)
	var wg sync.WaitGroup
	for i, w := range live {
		wg.Go(func() { answers[i] = w.fetch(deadline) })
	}
	wg.Wait()

	m := newMerger()
	m.add(retired, true)
	for _, a := range answers {
		m.add(a, false)
	}
	own, err := s.reg.Gather()
	m.add(own, false)
	return m.result(), err
}

// Handler serves /metrics and /healthz.
func (s *Supervisor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", s.health)
	return mux
}

// health answers 200 while every worker process slot has a process
// accepting connections, and 503 during start-up, while a slot has none
// (its process is being replaced) and once the supervisor is stopping.
func (s *Supervisor) health(w http.ResponseWriter, _ *http.Request) {
	accepting := s.accepting()
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case stopping:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "stopping")
	case accepting < s.processes:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "unavailable: %d of %d worker processes accepting\n", accepting, s.processes)
	default:
		fmt.Fprintf(w, "ok: %d of %d worker processes accepting\n", accepting, s.processes)
	}
}
