package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{nil, 0.99, 0},
		{ms(7), 0.99, 7 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.5, 2 * time.Millisecond},
		{ms(1, 2, 3, 4), 0.99, 4 * time.Millisecond},
		{ms(hundred...), 0.99, 99 * time.Millisecond},
		{ms(hundred...), 0.5, 50 * time.Millisecond},
		{ms(hundred...), 1, 100 * time.Millisecond},
	} {
		if got := percentile(tc.sorted, tc.p); got != tc.want {
			t.Errorf("percentile(%d latencies, %v) = %v, want %v", len(tc.sorted), tc.p, got, tc.want)
		}
	}
}

func TestFloodWindow(t *testing.T) {
	for d, want := range map[time.Duration][2]time.Duration{
		2 * time.Second:  {500 * time.Millisecond, 1250 * time.Millisecond},
		10 * time.Second: {time.Second, 8500 * time.Millisecond},
	} {
		if settle, window := floodWindow(d); settle != want[0] || window != want[1] {
			t.Errorf("floodWindow(%v) = %v, %v; want %v, %v", d, settle, window, want[0], want[1])
		}
	}
}

// TestPoliteLoop runs the polite clients against a test server: one
// connection, one request at a time, X-Forwarded-For going round the
// polite addresses, every answer checked.
func TestPoliteLoop(t *testing.T) {
	w, _ := findWorkload("fairness")
	var mu sync.Mutex
	var xff, peers []string
	inFlight, maxInFlight := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		xff = append(xff, r.Header.Get("X-Forwarded-For"))
		peers = append(peers, r.RemoteAddr)
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		rw.Write([]byte("fast\n"))
		mu.Lock()
		inFlight--
		mu.Unlock()
	}))
	defer srv.Close()
	res := politeLoop(srv.URL+"/", w, 300*time.Millisecond, time.Second)
	mu.Lock()
	defer mu.Unlock()
	if res.Requests < 3 || res.Requests != len(xff) || res.Failed != 0 {
		t.Fatalf("result %+v with %d requests served, want several, none failed", res, len(xff))
	}
	for i, a := range xff {
		if want := politeNet + strconv.Itoa(i%politeClients+1); a != want {
			t.Errorf("request %d: X-Forwarded-For %q, want %q", i, a, want)
		}
		if peers[i] != peers[0] {
			t.Errorf("request %d came on another connection (%s, first %s)", i, peers[i], peers[0])
		}
	}
	if maxInFlight != 1 {
		t.Errorf("%d polite requests in flight at once, want 1", maxInFlight)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 {
		t.Errorf("percentiles p50 %v, p99 %v, max %v", res.P50, res.P99, res.Max)
	}

	wrong := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("X-Forwarded-For"), ".2") {
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		rw.Write([]byte("slow\n"))
	}))
	defer wrong.Close()
	res = politeLoop(wrong.URL+"/", w, 100*time.Millisecond, time.Second)
	if res.Failed != res.Requests || !strings.Contains(res.FirstFailure, "body") {
		t.Errorf("against a wrong server: %+v, want every request failed, the first for its body", res)
	}
}

// TestJudgeFairness: wsgo's polite p99 under the flood against the bar,
// with every server's figures in the measured column.
func TestJudgeFairness(t *testing.T) {
	res := func(name string, alone, flood time.Duration, failed int) result {
		s, _ := findServer(name)
		return result{Server: s, Fair: &fairResult{
			Alone: politeResult{Requests: 100, P99: alone},
			Flood: politeResult{Requests: 80, P99: flood, Failed: failed},
		}}
	}
	var tg target
	for _, x := range targets() {
		if x.Workload == "fairness" {
			tg = x
		}
	}
	if tg.MaxP99 != 10*time.Millisecond {
		t.Fatalf("fairness target %+v, want a 10 ms bar", tg)
	}
	c := &config{only: []string{"fairness"}}
	for _, tc := range []struct {
		wsgo    result
		verdict string
	}{
		{res("wsgo", time.Millisecond, 4*time.Millisecond, 0), "PASS"},
		{res("wsgo", time.Millisecond, 10*time.Millisecond, 0), "FAIL"},
		{res("wsgo", time.Millisecond, 4*time.Millisecond, 1), "FAIL"},
	} {
		rep := &report{Results: map[string][]result{"fairness": {
			tc.wsgo, res("uwsgi", time.Millisecond, 1500*time.Millisecond, 0),
			res("gunicorn-gthread", 2*time.Millisecond, 300*time.Millisecond, 2),
		}}}
		desc, measured, verdict := c.judge(rep, tg)
		if verdict != tc.verdict {
			t.Errorf("wsgo p99 %v with %d failed: verdict %s, want %s (%s | %s)",
				tc.wsgo.Fair.Flood.P99, tc.wsgo.Fair.Flood.Failed, verdict, tc.verdict, desc, measured)
		}
		for _, part := range []string{"wsgo --workers 16 ", "uWSGI 1×16 threads 1.50 s (alone 1.00 ms)",
			"gunicorn gthread 1×16 threads 300.00 ms (alone 2.00 ms), 2 of 80 failed"} {
			if !strings.Contains(measured, part) {
				t.Errorf("measured %q lacks %q", measured, part)
			}
		}
	}
	if _, measured, verdict := (&config{only: []string{"hello"}}).judge(&report{}, tg); verdict != "n/a" || !strings.Contains(measured, "not run") {
		t.Errorf("fairness not run: %q, %q", measured, verdict)
	}
}

// TestMedianFairness: fairness rounds are ranked by the polite p99.
func TestMedianFairness(t *testing.T) {
	r := func(p99 time.Duration, rps float64) result {
		return result{Wrk: wrkResult{ReqPerSec: rps}, Fair: &fairResult{Flood: politeResult{P99: p99}}}
	}
	got := median([]result{r(9*time.Millisecond, 1), r(time.Millisecond, 2), r(3*time.Millisecond, 3)})
	if got.Fair.Flood.P99 != 3*time.Millisecond {
		t.Errorf("median p99 = %v, want 3ms", got.Fair.Flood.P99)
	}
}

// TestFairnessScript: the flood's wrk script sets the header from the
// address the harness passes it.
func TestFairnessScript(t *testing.T) {
	w, _ := findWorkload("fairness")
	src, err := os.ReadFile(w.Script)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), `wrk.headers["X-Forwarded-For"] = args[1]`) {
		t.Errorf("%s does not set X-Forwarded-For from its first argument", w.Script)
	}
	c := &config{wrkCPU: "1", wrkTimeout: 10 * time.Second}
	argv := strings.Join(c.wrkArgv(wrkRun{URL: "http://127.0.0.1:1/slow", Connections: w.Connections, Duration: time.Second,
		Script: w.Script, ScriptArgs: []string{floodAddr}}), " ")
	if !strings.HasSuffix(argv, "-s fairness.lua http://127.0.0.1:1/slow -- "+floodAddr) || !strings.Contains(argv, " -c100 ") {
		t.Errorf("wrk command line %q", argv)
	}
}
