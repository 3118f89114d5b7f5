// Package metrics is wsgo's Prometheus side (--stats-socket): the
// registry of each worker process, the channel on which the supervisor
// fetches it, and the supervisor's sum over all its processes, served at
// /metrics with a health check at /healthz.
//
// It owns the metric names and how the processes' figures add up. It does
// not touch requests, the queue, the cache or Python, and imports none of
// wsgo's packages: the front reports each answered request through
// Process.Request (atomic counters, no lock, no allocation), and every
// other figure is read at scrape time through the Figures callback given
// to NewProcess, so that the request path pays only for the counters.
//
// Across processes, counters and histograms are summed, and so are gauges
// without a "process" label (queue length, busy workers); a series labelled
// process="N" (Python's memory, the standard process_* and go_* figures)
// is one worker process slot's own, since adding them up would mean
// nothing. The counts of a worker process that has exited are kept, so
// that the sums never go down when one is replaced.
package metrics

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// ProcessLabel marks a series that belongs to one worker process slot
// (numbered from 1) and is not summed across processes.
const ProcessLabel = "process"

// latencyBuckets, in seconds, suit both a request's duration and its wait
// in the queue: from a cache hit's fraction of a millisecond to the
// default --request-timeout.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Figures are a worker process's figures that other packages keep, read
// at each scrape.
type Figures struct {
	Workers, BusyWorkers, StuckWorkers, QueueLength int
	Timeouts, AppErrors                             int64
	// Cache* are the response cache's, when Cache (--max-age) is on.
	Cache                           bool
	CacheHits, CacheMisses          int64
	CacheBytes, CacheEntries        int64
	BlockedClients, BlockedRequests int64
	ParkedRequests                  int
	ParkedTotal                     int64
	// Python* are Python's memory figures, when Python could be asked.
	Python             bool
	PythonBlocks       int64
	PythonGCGeneration [3]int64
}

// Process is one worker process's metrics. A nil *Process records
// nothing, so that callers need no check when --stats-socket is off.
type Process struct {
	reg       *prometheus.Registry
	requests  requestCounter
	duration  prometheus.Histogram
	queueWait prometheus.Histogram

	wmu  sync.Mutex // one frame at a time on conn
	conn net.Conn   // to the supervisor; see Serve
}

// NewProcess returns the metrics of worker process slot (from 1), whose
// other figures read fills in at each scrape.
func NewProcess(slot int, read func(*Figures)) *Process {
	p := &Process{reg: prometheus.NewRegistry()}
	p.requests.vec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wsgo_requests_total",
		Help: "Requests answered (one per access log line), by method and status.",
	}, []string{"method", "status"})
	p.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wsgo_request_duration_seconds",
		Help:    "Time from a request's arrival to the end of its response (the access log's duration).",
		Buckets: latencyBuckets,
	})
	p.queueWait = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "wsgo_queue_wait_seconds",
		Help:    "Time requests waited in the queue before a worker took them.",
		Buckets: latencyBuckets,
	})
	label := strconv.Itoa(slot)
	p.reg.MustRegister(p.requests.vec, p.duration, p.queueWait, newFigureCollector(label, read))
	own := prometheus.WrapRegistererWith(prometheus.Labels{ProcessLabel: label}, p.reg)
	own.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return p
}

// Request counts one answered request that took d.
func (p *Process) Request(method string, status int, d time.Duration) {
	if p == nil {
		return
	}
	p.requests.inc(method, status)
	p.duration.Observe(d.Seconds())
}

// QueueWait records how long a request waited for a worker.
func (p *Process) QueueWait(d time.Duration) {
	if p == nil {
		return
	}
	p.queueWait.Observe(d.Seconds())
}

// methods are the request methods counted by name; any other is "OTHER",
// so that a client cannot make up series.
var methods = [...]string{"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "OTHER"}

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "DELETE":
		return 4
	case "PATCH":
		return 5
	case "OPTIONS":
		return 6
	}
	return 7
}

// Statuses 100 to 999 are counted by number; anything else as "other".
const (
	minStatus   = 100
	statusSlots = 901 // 100..999, then "other"
)

// requestCounter is a CounterVec whose children are looked up once per
// method and status and kept in a table, so that counting a request is an
// index and an atomic add, not a label hash and a map lookup.
type requestCounter struct {
	vec   *prometheus.CounterVec
	cells [len(methods)][statusSlots]atomic.Pointer[prometheus.Counter]
}

func (r *requestCounter) inc(method string, status int) {
	m, s := methodIndex(method), status-minStatus
	if s < 0 || s >= statusSlots-1 {
		s = statusSlots - 1
	}
	cell := &r.cells[m][s]
	c := cell.Load()
	if c == nil {
		name := "other"
		if s < statusSlots-1 {
			name = strconv.Itoa(s + minStatus)
		}
		counter := r.vec.WithLabelValues(methods[m], name) // the same child for every caller
		c = &counter
		cell.Store(c)
	}
	(*c).Inc()
}

// figureCollector turns Figures into metrics at each scrape.
type figureCollector struct {
	read  func(*Figures)
	descs struct {
		workers, busy, stuck, queue, timeouts, appErrors,
		cacheHits, cacheMisses, cacheBytes, cacheEntries,
		blockedClients, blockedRequests, parked, parkedTotal,
		pyBlocks, pyGC *prometheus.Desc
	}
}

func newFigureCollector(process string, read func(*Figures)) *figureCollector {
	c := &figureCollector{read: read}
	d := &c.descs
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	own := prometheus.Labels{ProcessLabel: process}
	d.workers = desc("wsgo_workers", "Python worker threads.")
	d.busy = desc("wsgo_workers_busy", "Worker threads serving a request now.")
	d.stuck = desc("wsgo_workers_stuck", "Worker threads that have not come back from a timed-out request.")
	d.queue = desc("wsgo_queue_length", "Requests waiting for a worker.")
	d.timeouts = desc("wsgo_request_timeouts_total", "Requests interrupted by --request-timeout.")
	d.appErrors = desc("wsgo_app_errors_total", "Requests whose app raised or answered wrongly.")
	d.cacheHits = desc("wsgo_cache_hits_total", "Requests answered from the response cache.")
	d.cacheMisses = desc("wsgo_cache_misses_total", "Cacheable requests that went to the app.")
	d.cacheBytes = desc("wsgo_cache_size_bytes", "Memory held by the response cache, as --cache-size counts it.")
	d.cacheEntries = desc("wsgo_cache_entries", "Responses in the response cache.")
	d.blockedClients = desc("wsgo_blocked_clients", "Clients blocked by X-WSGo-Block now.")
	d.blockedRequests = desc("wsgo_blocked_requests_total", "Requests refused with 429 for a block (not in wsgo_requests_total).")
	d.parked = desc("wsgo_parked_requests", "Requests parked now.")
	d.parkedTotal = desc("wsgo_parked_requests_total", "Requests parked so far.")
	d.pyBlocks = prometheus.NewDesc("wsgo_python_allocated_blocks", "Memory blocks held by Python's allocator (sys.getallocatedblocks()).", nil, own)
	d.pyGC = prometheus.NewDesc("wsgo_python_gc_objects", "Objects allocated less freed since each generation's last collection (gc.get_count()).", []string{"generation"}, own)
	return c
}

func (c *figureCollector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.descs
	for _, desc := range []*prometheus.Desc{d.workers, d.busy, d.stuck, d.queue, d.timeouts, d.appErrors,
		d.cacheHits, d.cacheMisses, d.cacheBytes, d.cacheEntries, d.blockedClients, d.blockedRequests,
		d.parked, d.parkedTotal, d.pyBlocks, d.pyGC} {
		ch <- desc
	}
}

func (c *figureCollector) Collect(ch chan<- prometheus.Metric) {
	var f Figures
	c.read(&f)
	d := &c.descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v))
	}
	gauge(d.workers, float64(f.Workers))
	gauge(d.busy, float64(f.BusyWorkers))
	gauge(d.stuck, float64(f.StuckWorkers))
	gauge(d.queue, float64(f.QueueLength))
	counter(d.timeouts, f.Timeouts)
	counter(d.appErrors, f.AppErrors)
	if f.Cache {
		counter(d.cacheHits, f.CacheHits)
		counter(d.cacheMisses, f.CacheMisses)
		gauge(d.cacheBytes, float64(f.CacheBytes))
		gauge(d.cacheEntries, float64(f.CacheEntries))
	}
	gauge(d.blockedClients, float64(f.BlockedClients))
	counter(d.blockedRequests, f.BlockedRequests)
	gauge(d.parked, float64(f.ParkedRequests))
	counter(d.parkedTotal, f.ParkedTotal)
	if f.Python {
		gauge(d.pyBlocks, float64(f.PythonBlocks))
		for g, n := range f.PythonGCGeneration {
			gauge(d.pyGC, float64(n), strconv.Itoa(g))
		}
	}
}
