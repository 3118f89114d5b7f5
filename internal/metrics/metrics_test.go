package metrics

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// socketPair returns both ends of a Unix socket pair, as the supervisor
// makes one for each worker.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := osFile(fd)
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

// find returns the value of the series of family name whose labels
// include want (name=value pairs), and whether there is one.
func find(families []*dto.MetricFamily, name string, want ...string) (float64, bool) {
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.Metric {
			for i := 0; i+1 < len(want); i += 2 {
				found := false
				for _, l := range m.Label {
					found = found || (l.GetName() == want[i] && l.GetValue() == want[i+1])
				}
				if !found {
					continue series
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount()), true
			}
		}
	}
	return 0, false
}

func figures(busy int) func(*Figures) {
	return func(f *Figures) {
		f.Workers, f.BusyWorkers, f.QueueLength = 4, busy, 1
		f.Python, f.PythonBlocks, f.PythonGCGeneration = true, int64(1000*busy), [3]int64{7, 8, 9}
	}
}

func TestRequestCounts(t *testing.T) {
	p := NewProcess(1, figures(0))
	for range 3 {
		p.Request("GET", 200, time.Millisecond)
	}
	p.Request("BREW", 418, time.Millisecond)
	p.Request("POST", 1000, time.Second)
	p.QueueWait(time.Millisecond)
	families, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsgo_requests_total", []string{"method", "GET", "status", "200"}, 3},
		{"wsgo_requests_total", []string{"method", "OTHER", "status", "418"}, 1},
		{"wsgo_requests_total", []string{"method", "POST", "status", "other"}, 1},
		{"wsgo_request_duration_seconds", nil, 5},
		{"wsgo_queue_wait_seconds", nil, 1},
		{"wsgo_workers", nil, 4},
		{"wsgo_python_gc_objects", []string{"generation", "2", "process", "1"}, 9},
		{"process_resident_memory_bytes", []string{"process", "1"}, -1},
	} {
		got, ok := find(families, tc.name, tc.labels...)
		if !ok || (tc.want >= 0 && got != tc.want) {
			t.Errorf("%s%v = %v (found: %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	var nilProcess *Process
	nilProcess.Request("GET", 200, 0) // must not panic
	nilProcess.QueueWait(0)
	nilProcess.Final()
}

func counterFamily(name string, v float64, labels ...string) *dto.MetricFamily {
	m := &dto.Metric{Counter: &dto.Counter{Value: proto.Float64(v)}}
	for i := 0; i+1 < len(labels); i += 2 {
		m.Label = append(m.Label, &dto.LabelPair{Name: proto.String(labels[i]), Value: proto.String(labels[i+1])})
	}
	return &dto.MetricFamily{Name: proto.String(name), Type: dto.MetricType_COUNTER.Enum(), Metric: []*dto.Metric{m}}
}

func gaugeFamily(name string, v float64, labels ...string) *dto.MetricFamily {
	f := counterFamily(name, 0, labels...)
	f.Type = dto.MetricType_GAUGE.Enum()
	f.Metric[0].Counter, f.Metric[0].Gauge = nil, &dto.Gauge{Value: proto.Float64(v)}
	return f
}

func TestMergeRules(t *testing.T) {
	hist := func(count uint64, buckets ...uint64) *dto.MetricFamily {
		h := &dto.Histogram{SampleCount: proto.Uint64(count), SampleSum: proto.Float64(float64(count))}
		for i, b := range buckets {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(float64(i + 1)), CumulativeCount: proto.Uint64(b)})
		}
		return &dto.MetricFamily{Name: proto.String("h"), Type: dto.MetricType_HISTOGRAM.Enum(), Metric: []*dto.Metric{{Histogram: h}}}
	}
	older := []*dto.MetricFamily{counterFamily("c", 2, "status", "200"), gaugeFamily("q", 3),
		gaugeFamily("mem", 100, "process", "1"), hist(3, 1, 3)}
	newer := []*dto.MetricFamily{counterFamily("c", 5, "status", "200"), counterFamily("c", 1, "status", "500"),
		gaugeFamily("q", 4), gaugeFamily("mem", 50, "process", "1"), gaugeFamily("mem", 70, "process", "2"), hist(2, 2, 2)}
	m := newMerger()
	m.add(older, false)
	m.add(newer, false)
	got := m.result()
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"c", []string{"status", "200"}, 7},
		{"c", []string{"status", "500"}, 1},
		{"q", nil, 7},
		{"mem", []string{"process", "1"}, 50}, // the newer process's own
		{"mem", []string{"process", "2"}, 70},
		{"h", nil, 5},
	} {
		if v, ok := find(got, tc.name, tc.labels...); !ok || v != tc.want {
			t.Errorf("%s%v = %v (found: %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	if b := got[1].Metric[0].Histogram.Bucket; b[0].GetCumulativeCount() != 3 || b[1].GetCumulativeCount() != 5 {
		t.Errorf("histogram buckets = %v", b)
	}
	// Only what stays true of an exited process is kept.
	m = newMerger()
	m.add(newer, true)
	if _, ok := find(m.result(), "q"); ok {
		t.Error("a gauge was kept of an exited process")
	}
	if v, _ := find(m.result(), "c", "status", "200"); v != 5 {
		t.Errorf("exited process's counter = %v", v)
	}
	// The inputs are left alone.
	if older[0].Metric[0].Counter.GetValue() != 2 || newer[3].Metric[0].Gauge.GetValue() != 50 {
		t.Error("merging changed its inputs")
	}
}

// TestSupervisorSumsAndKeepsExitedCounts: the supervisor sums its workers'
// metrics, and a worker's counts stay in the sums once it has exited.
func TestSupervisorSumsAndKeepsExitedCounts(t *testing.T) {
	s := NewSupervisor(2, reasons)
	var workers [2]*Process
	for i := range workers {
		ours, theirs := socketPair(t)
		workers[i] = NewProcess(i+1, figures(i+1))
		workers[i].Serve(theirs)
		s.Started(100+i, i+1, "", ours)
	}
	workers[0].Request("GET", 200, time.Millisecond)
	workers[1].Request("GET", 200, time.Millisecond)
	workers[1].Request("GET", 404, time.Millisecond)

	families, err := s.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsgo_requests_total", []string{"method", "GET", "status", "200"}, 2},
		{"wsgo_requests_total", []string{"method", "GET", "status", "404"}, 1},
		{"wsgo_workers", nil, 8},
		{"wsgo_workers_busy", nil, 3},
		{"wsgo_python_allocated_blocks", []string{"process", "1"}, 1000},
		{"wsgo_python_allocated_blocks", []string{"process", "2"}, 2000},
		{"wsgo_worker_restarts_total", []string{"reason", "exit"}, 0},
	} {
		if v, ok := find(families, tc.name, tc.labels...); !ok || v != tc.want {
			t.Errorf("%s%v = %v (found: %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}

	// Worker 2 serves one more request, then exits; its replacement starts.
	workers[1].Request("GET", 200, time.Millisecond)
	workers[1].Final()
	waitGone(t, s, 101)
	ours, theirs := socketPair(t)
	replacement := NewProcess(2, figures(0))
	replacement.Serve(theirs)
	s.Started(102, 2, "exit", ours)
	replacement.Request("GET", 200, time.Millisecond)

	families, _ = s.Gather()
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"wsgo_requests_total", []string{"method", "GET", "status", "200"}, 4},
		{"wsgo_requests_total", []string{"method", "GET", "status", "404"}, 1},
		{"wsgo_request_duration_seconds", nil, 5},
		{"wsgo_workers", nil, 8},
		{"wsgo_python_allocated_blocks", []string{"process", "2"}, 0},
		{"wsgo_worker_restarts_total", []string{"reason", "exit"}, 1},
	} {
		if v, ok := find(families, tc.name, tc.labels...); !ok || v != tc.want {
			t.Errorf("after the restart: %s%v = %v (found: %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
}

func waitGone(t *testing.T, s *Supervisor, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		s.mu.Lock()
		_, live := s.workers[pid]
		s.mu.Unlock()
		if !live {
			return
		}
	}
	t.Fatalf("worker %d's channel did not end", pid)
}

// TestUnansweredScrape: a worker that does not answer is counted with its
// previous answer, after a bounded wait.
func TestUnansweredScrape(t *testing.T) {
	s := NewSupervisor(1, reasons)
	ours, theirs := socketPair(t)
	defer theirs.Close()
	s.Started(100, 1, "", ours)
	start := time.Now()
	families, err := s.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > scrapeTimeout+time.Second {
		t.Errorf("scrape took %v", took)
	}
	if v, ok := find(families, "wsgo_processes_accepting"); !ok || v != 0 {
		t.Errorf("wsgo_processes_accepting = %v, %v", v, ok)
	}
}

func TestHealth(t *testing.T) {
	s := NewSupervisor(2, reasons)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	check := func(want int, body string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || !strings.Contains(string(b), body) {
			t.Errorf("/healthz = %d %q, want %d %q", resp.StatusCode, b, want, body)
		}
	}
	s.Started(1, 1, "", nil)
	s.Started(2, 2, "", nil)
	check(503, "0 of 2")
	s.Ready(1)
	check(503, "1 of 2")
	s.Ready(2)
	check(200, "ok: 2 of 2")
	// A reload: the new process of slot 1 is ready before the old stops.
	s.Started(3, 1, "reload", nil)
	s.Ready(3)
	s.Stopping(1)
	check(200, "ok: 2 of 2")
	s.Exited(1)
	// Slot 2's process crashes.
	s.Exited(2)
	check(503, "1 of 2")
	s.Started(4, 2, "exit", nil)
	s.Ready(4)
	check(200, "ok")
	s.ShuttingDown()
	check(503, "stopping")
}

// reasons are the supervisor's restart reasons.
var reasons = []string{"exit", "recycle", "reload"}

func osFile(fd int) *os.File { return os.NewFile(uintptr(fd), "socketpair") }
