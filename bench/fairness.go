package main

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// The fairness workload asks what one client's flood does to other
// clients' latency. wrk floods the workload's Flood path with Connections
// connections, every request carrying X-Forwarded-For floodAddr
// (fairness.lua); meanwhile the harness itself is the polite traffic,
// requesting Path on one keep-alive connection, one request at a time with
// a pause between. wsgo believes X-Forwarded-For from loopback, where both
// connect from, and so sees the flooding client apart from the polite
// ones; the peers see connections.
//
// The polite traffic comes from politeClients addresses in turn, each
// making at most one request a second or so, rather than from one address:
// wsgo charges a client 1000 for each request it completed, decaying by
// 1000 a second, so one address that keeps up more than a request a second
// sinks, after a few seconds, below the background line like the flood
// itself (at the pace below, one address would be there in a fraction of
// a second). That is the spec's rule for heavy clients; the polite clients
// here are ordinary ones.
//
// Each server gets, after the usual check: the polite clients alone for a
// measured run's length; a wrk warm-up of the flood; then the measured
// flood with the polite clients inside it, starting once the flood has
// settled and stopping a little before it ends.
const (
	floodAddr = "203.0.113.7"
	// The polite clients are politeNet1 to politeNet<politeClients>.
	politeNet     = "198.51.100."
	politeClients = 64
	// politePause is the pause between polite requests: at most 50
	// requests/s in all, so each address at most one per 1.28 s.
	politePause = 20 * time.Millisecond
)

// politeAddrs describes the polite clients' addresses.
var politeAddrs = fmt.Sprintf("%s1–%d", politeNet, politeClients)

// politeResult is what the polite client saw in one phase.
type politeResult struct {
	Requests int
	// Failed counts errors, timeouts and wrong answers; their latency (up
	// to the timeout) counts in the percentiles.
	Failed        int
	FirstFailure  string
	P50, P99, Max time.Duration
}

// String formats the result briefly, for progress lines.
func (p politeResult) String() string {
	s := fmt.Sprintf("p99 %s (p50 %s, max %s, %d requests", fmtDur(p.P99), fmtDur(p.P50), fmtDur(p.Max), p.Requests)
	if p.Failed > 0 {
		s += fmt.Sprintf(", %d failed", p.Failed)
	}
	return s + ")"
}

// fairResult is the polite client's figures without and with the flood;
// the flood's own are the run's wrk result.
type fairResult struct {
	Alone, Flood politeResult
}

// percentile returns the p-th percentile (0 < p ≤ 1) of sorted latencies,
// the nearest-rank way: the smallest latency at least p of them do not
// exceed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// politeLoop requests url as the polite clients, in turn, for window (a
// request started before the window ends is waited for, up to timeout),
// on one keep-alive connection, and checks each answer with w.Check.
func politeLoop(url string, w workload, window, timeout time.Duration) politeResult {
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true},
	}
	defer client.CloseIdleConnections()
	var res politeResult
	var lat []time.Duration
	fail := func(err error) {
		res.Failed++
		if res.FirstFailure == "" {
			res.FirstFailure = err.Error()
		}
	}
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(politePause) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			fail(err)
			break
		}
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("%s%d", politeNet, res.Requests%politeClients+1))
		start := time.Now()
		resp, err := client.Do(req)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		lat = append(lat, time.Since(start))
		res.Requests++
		switch {
		case err != nil:
			fail(err)
		case resp.StatusCode != http.StatusOK:
			fail(fmt.Errorf("status %s", resp.Status))
		default:
			if err := w.Check(resp.Header, body); err != nil {
				fail(err)
			}
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	res.P50, res.P99 = percentile(lat, 0.5), percentile(lat, 0.99)
	if len(lat) > 0 {
		res.Max = lat[len(lat)-1]
	}
	return res
}

// floodWindow is the part of a measured flood of length d in which the
// polite client runs: from settle after wrk starts, so that all of wrk's
// connections are busy, to tail before it stops.
func floodWindow(d time.Duration) (settle, window time.Duration) {
	settle = min(time.Second, d/4)
	tail := min(500*time.Millisecond, d/8)
	return settle, d - settle - tail
}

// runFairness measures a fairness workload on the running server p (its
// polite path already checked): the polite client alone, then under the
// flood. The flood's wrk figures go to r.Wrk, the polite client's to
// r.Fair.
func (c *config) runFairness(p *proc, w workload, r *result) error {
	base := "http://" + addr(p.port)
	politeURL, floodURL := base+w.path(), base+w.Flood
	h, b, err := fetch(floodURL, w, time.Minute)
	if err == nil {
		err = w.FloodCheck(h, b)
	}
	if err != nil {
		return fmt.Errorf("check of %s: %v", w.Flood, err)
	}
	fair := &fairResult{Alone: politeLoop(politeURL, w, c.duration, c.wrkTimeout)}
	r.Fair = fair
	if fair.Alone.Failed > 0 {
		return fmt.Errorf("polite client alone: %d of %d requests failed, the first: %s",
			fair.Alone.Failed, fair.Alone.Requests, fair.Alone.FirstFailure)
	}
	run := wrkRun{URL: floodURL, Connections: w.Connections, Script: c.scriptPath(w.Script),
		ScriptArgs: []string{floodAddr}}
	if c.warmup > 0 {
		run.Duration = c.warmup
		if _, err := c.runWrk(run); err != nil {
			return fmt.Errorf("warm-up: %v", err)
		}
		// What the warm-up left queued drains before the measured run.
		if err := checkResponse(politeURL, w); err != nil {
			return fmt.Errorf("check after warm-up: %v", err)
		}
	}
	run.Duration = c.duration
	settle, window := floodWindow(c.duration)
	polite := make(chan politeResult, 1)
	go func() {
		time.Sleep(settle)
		polite <- politeLoop(politeURL, w, window, c.wrkTimeout)
	}()
	r.Wrk, err = c.measure(run, politeURL, w)
	fair.Flood = <-polite
	return err
}

// judgeFairness evaluates a target on the polite client's p99 under the
// flood: wsgo's must stay under t.MaxP99 with no failed request; the
// peers' figures are shown for comparison.
func (c *config) judgeFairness(rep *report, t target) (desc, measured, verdict string) {
	wl, _ := findWorkload(t.Workload)
	ws, _ := findServer(t.Wsgo)
	desc = fmt.Sprintf("%s: polite client's p99 under the flood, %s < %s (peers for comparison)",
		wl.Name, ws.label(wl), fmtDur(t.MaxP99))
	if !contains(c.only, wl.Name) {
		return desc, "not measured (" + wl.Name + " was not run)", "n/a"
	}
	var parts []string
	var wsgo *result
	for i, r := range rep.Results[wl.Name] {
		if r.Server.Name != t.Wsgo && !contains(t.Peers, r.Server.Name) {
			continue
		}
		if r.Server.Name == t.Wsgo {
			wsgo = &rep.Results[wl.Name][i]
		}
		switch {
		case r.Fair == nil || r.Err != nil && r.Fair.Flood.Requests == 0:
			parts = append(parts, r.Server.label(wl)+" failed")
		default:
			s := fmt.Sprintf("%s %s (alone %s)", r.Server.label(wl), fmtDur(r.Fair.Flood.P99), fmtDur(r.Fair.Alone.P99))
			if f := r.Fair.Flood.Failed; f > 0 {
				s += fmt.Sprintf(", %d of %d failed", f, r.Fair.Flood.Requests)
			}
			parts = append(parts, s)
		}
	}
	measured = strings.Join(parts, "; ")
	switch {
	case wsgo == nil:
		return desc, "not measured", "n/a"
	case wsgo.Err != nil || wsgo.Fair == nil || wsgo.Fair.Flood.Requests == 0:
		return desc, measured, "FAIL"
	case wsgo.Fair.Flood.Failed > 0 || wsgo.Fair.Flood.P99 >= t.MaxP99:
		return desc, measured, "FAIL"
	default:
		return desc, measured, "PASS"
	}
}

// renderFairness writes the results table of a fairness workload.
func (c *config) renderFairness(b *strings.Builder, w workload, rs []result) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	settle, window := floodWindow(c.duration)
	p("\n### %s — %s\n\n", w.Name, w.Desc)
	p("Flood: `wrk -c%d -s bench/%s http://127.0.0.1:PORT%s -- %s`. ", w.Connections, w.Script, w.Flood, floodAddr)
	p("Polite clients: the harness, `GET %s` on one keep-alive connection, one request at a time with %s between, `X-Forwarded-For` going round %d addresses (%s) so that each makes at most one request a second or so (one address keeping up more would sink below wsgo's background line like the flood: each request a client completed costs it 1000, decaying by 1000 a second); alone for %s, then under the measured flood from %s after its start for %s. ",
		w.path(), fmtDur(politePause), politeClients, politeAddrs, c.duration, settle, window)
	p("Failed polite requests (errors, timeouts after %s, wrong answers) count in the percentiles with the time they took.\n\n", c.wrkTimeout)
	p("| server | polite p99 alone | polite p99 under flood | polite p50 under flood | polite max under flood | polite requests under flood | flood req/s | flood p99 | flood errors | new connection |\n")
	p("|---|--:|--:|--:|--:|--:|--:|--:|---|--:|\n")
	for _, r := range rs {
		label := r.Server.label(w)
		if r.Fair == nil {
			p("| %s | failed: %s | | | | | | | | |\n", label, firstLine(errText(r.Err)))
			continue
		}
		f := r.Fair
		requests := fmt.Sprint(f.Flood.Requests)
		if f.Flood.Failed > 0 {
			requests += fmt.Sprintf(" (%d failed)", f.Flood.Failed)
		}
		if r.Err != nil {
			p("| %s | %s | failed: %s | | | | | | | |\n", label, fmtDur(f.Alone.P99), firstLine(r.Err.Error()))
			continue
		}
		p("| %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %s |\n", label, fmtDur(f.Alone.P99), fmtDur(f.Flood.P99),
			fmtDur(f.Flood.P50), fmtDur(f.Flood.Max), requests, r.Wrk.ReqPerSec, fmtDur(r.Wrk.P99), r.Wrk.errorText(), r.Wrk.Probe)
	}
}

func errText(err error) string {
	if err == nil {
		return "no result"
	}
	return err.Error()
}

// progressFairness prints a fairness run's figures on the progress line.
func progressFairness(r result) {
	fmt.Fprintf(os.Stderr, "polite alone %s; under flood %s; flood %.0f req/s, p99 %s, errors %s\n",
		r.Fair.Alone, r.Fair.Flood, r.Wrk.ReqPerSec, fmtDur(r.Wrk.P99), r.Wrk.errorText())
}
