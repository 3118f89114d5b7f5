package main

import (
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// A target is one ratio the project must meet: wsgo's requests/s on a
// workload against Factor times the best of some peers'.
type target struct {
	Workload string
	Wsgo     string   // the wsgo configuration measured
	Peers    []string // the best of these is the bar
	// PeerWorkload, when set, is the workload whose figures the peers'
	// come from, instead of Workload (from the same run).
	PeerWorkload string
	Factor       float64
	// Info marks a ratio shown for information, with no bar to meet.
	Info bool
	// MaxP99, when set, makes this a fairness target instead of a ratio:
	// the polite client's p99 under the flood on wsgo must stay below it,
	// and the peers' are shown beside it (see judgeFairness).
	MaxP99 time.Duration
}

// threadPeers are the thread/process-based peers.
func threadPeers() []string {
	var p []string
	for _, s := range servers {
		if s.ThreadPeer {
			p = append(p, s.Name)
		}
	}
	return p
}

// targets lists what BENCHMARKS.md judges, in workload order: hello
// against uWSGI and gunicorn gthread; static50k against uWSGI and Go's
// FileServer; cached (cache hits) against wsgo's own uncached hello, with
// its ratio to the uncached page for information; fairness by the polite
// client's p99 under the flood, under 10 ms, with uWSGI's and gunicorn
// gthread's for comparison; every other workload against the best
// thread/process peer; and the sleep workload with 256 workers against
// gevent.
func targets() []target {
	var t []target
	for _, w := range workloads {
		switch w.Name {
		case "hello":
			t = append(t,
				target{Workload: w.Name, Wsgo: "wsgo", Peers: []string{"uwsgi"}, Factor: 0.75},
				target{Workload: w.Name, Wsgo: "wsgo", Peers: []string{"gunicorn-gthread"}, Factor: 3})
		case "static50k":
			t = append(t,
				target{Workload: w.Name, Wsgo: "wsgo", Peers: []string{"uwsgi"}, Factor: 1},
				target{Workload: w.Name, Wsgo: "wsgo", Peers: []string{"go-fileserver"}, Factor: 0.9})
		case "cached":
			t = append(t,
				target{Workload: w.Name, Wsgo: "wsgo", Peers: []string{"wsgo"}, PeerWorkload: "hello", Factor: 2},
				target{Workload: w.Name, Wsgo: "wsgo", Peers: []string{"wsgo-nocache"}, Info: true})
		case "fairness":
			t = append(t, target{Workload: w.Name, Wsgo: "wsgo", Peers: []string{"uwsgi", "gunicorn-gthread"},
				MaxP99: 10 * time.Millisecond})
		default:
			t = append(t, target{Workload: w.Name, Wsgo: "wsgo", Peers: threadPeers(), Factor: 1})
		}
	}
	return append(t, target{Workload: "sleep20ms", Wsgo: "wsgo-256", Peers: []string{"gunicorn-gevent"}, Factor: 1})
}

// render builds BENCHMARKS.md.
func (c *config) render(rep *report) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# wsgo benchmarks\n\n")
	if c.quick {
		p("**Quick smoke run (`-quick`): runs too short to compare; do not quote these figures.**\n\n")
	}
	if cmd := c.commandLine(); cmd == makeBenchCommand {
		p("Produced by `make bench`, which runs:\n\n```\n%s\n```\n\n", cmd)
	} else {
		p("Produced by the command below (`make bench` runs `%s`):\n\n```\n%s\n```\n\n", makeBenchCommand, cmd)
	}
	if busy(rep.LoadStart) {
		p("**The machine was busy (load average %s before the runs): other work competed for the CPUs, so these figures understate every server.**\n\n", rep.LoadStart)
	}
	p("## Machine\n\n| | |\n|---|---|\n")
	for _, kv := range machineInfo(c, rep.Started) {
		p("| %s | %s |\n", kv[0], kv[1])
	}
	p("| Load average (1, 5, 15 min) | %s before, %s after |\n", rep.LoadStart, rep.LoadEnd)
	p("\n## Method\n\n")
	p("- Every server runs as one worker process pinned to CPU %s (`taskset -c %s`); wrk runs with one thread pinned to CPU %s: `%s`.\n",
		c.serverCPU, c.serverCPU, c.wrkCPU, strings.Replace(strings.Join(c.wrkArgv(wrkRun{URL: "http://127.0.0.1:PORT/", Connections: 0, Duration: c.duration}), " "), "-c0", "-cN", 1))
	p("- Each server is started afresh for each workload on a free port of 127.0.0.1, one response is checked (status, framing, body) with Go's HTTP client, wrk warms it up for %s, the check is repeated (so that whatever the warm-up left queued has drained), then wrk measures it for %s%s; then it gets SIGTERM (SIGKILL after %s).\n",
		c.warmup, c.duration, repeatText(c.repeat), c.stopWait)
	p("- req/s and p99 are wrk's (`--latency`); \"errors\" counts non-2xx responses and socket errors (a response slower than %s is a timeout). \"wsgo ÷ server\" is wsgo's req/s over that server's.\n", c.wrkTimeout)
	if c.repeat > 1 {
		p("- A target's ratio is not the ratio of the two medians but the median of its per-round ratios (for an even count the lower of the middle two): in each round wsgo's req/s over the peer's from the same round. Within a round a workload's servers run one after the other, seconds apart, but this machine's speed drifts by as much as a fifth over minutes, between rounds, and two medians may come from different rounds; a ratio within one round leaves the drift out (cached against wsgo's own hello pairs runs of two workloads, further apart but still in one round). Where the bar is the best of several peers, the best is the one with the highest median req/s.\n")
	}
	p("- The Python servers run Debian's %s; PYTHON* environment variables are removed from their environment.\n", c.python)
	p("- wrk requests `/` unless a workload names another path (static50k). Not every server runs every workload: a Go floor runs only the workload it stands in for, and static50k and cached run only on the servers listed under Servers.\n")
	p("\n## Servers\n\n| server | command (workload `hello`, or the only one it runs) | access logging |\n|---|---|---|\n")
	hello, _ := findWorkload("hello")
	for _, s := range servers {
		if !c.selected(s.Name) {
			continue
		}
		w := hello
		if s.Only != nil {
			w, _ = findWorkload(s.Only[0])
		}
		p("| %s | `%s` | %s |\n", s.Label, c.shownCommand(s, w), s.Logging(c))
	}
	if w, _ := findWorkload("static50k"); contains(c.only, w.Name) && c.anyRuns(w) {
		p("\nFor static50k the harness writes `%s` (%s bytes, byte i being i mod 251) into STATIC_DIR, a temporary directory, and wrk requests `%s`, which each server answers from the file without calling an application; uWSGI sends it with sendfile() from the worker thread, its default (no offload threads), and gets `--tcp-nodelay`, without which Nagle's algorithm holds each file (smaller than loopback's 64 KB MSS, sent after the headers) until the client's delayed ACK, about 40 ms (wsgo and Go set TCP_NODELAY on every connection). wsgo keeps files of up to 64 KiB in memory by default (`--static-memory`), so it sends this one with a single copy into the socket, where the others open, stat, sendfile and close the file on every request; `wsgo --static-memory 0` does the same as they do. Only these servers run it:\n\n",
			staticFile50k, fmtCount(int64(len(file50k))), w.path())
		c.listCommands(&b, w)
	}
	if w, _ := findWorkload("cached"); contains(c.only, w.Name) && c.anyRuns(w) {
		p("\nFor cached wsgo runs with `--max-age %d`: the check request renders the page and fills the cache, and every later request is a hit. Before the load the harness checks, with the render counter the page carries, that two more requests get the same rendering from wsgo --max-age and different ones from the servers without a cache: the same wsgo without `--max-age`, and uWSGI for reference. Only these servers run it:\n\n", w.MaxAge)
		c.listCommands(&b, w)
	}
	if w, _ := findWorkload("fairness"); contains(c.only, w.Name) && c.anyRuns(w) {
		p("\nFor fairness one client floods a slow page while ordinary clients make requests (see its results below). wsgo trusts X-Forwarded-For from loopback, where wrk and the harness connect from, and so tells the flooding client (%s) from the polite ones (%s); with %d requests in flight the flooding client's requests rank far below the background line (−7000) and each runs only when no worker is busy, while the polite clients' run at once on an idle worker. The peers serve connections as they come. Only these servers run it:\n\n",
			floodAddr, politeAddrs, w.Connections)
		c.listCommands(&b, w)
	}
	if c.selected("uwsgi") {
		p("\nuWSGI's http11-socket keeps each of its 16 threads on one keep-alive connection for as long as the client keeps it open; connections beyond 16 wait in the listen queue (see \"new connection\" in the results).\n")
	}
	if c.selected("uwsgi") && contains(c.only, "stream1m") {
		p("\nFor stream1m uWSGI also gets `--plugin transformation_chunked --route-run chunked:`: its http11-socket otherwise ends a body without Content-Length by closing the connection, which wrk cannot read.\n")
	}

	p("\n## Targets\n\n| target | measured | result |\n|---|---|---|\n")
	for _, t := range targets() {
		if contains(c.only, t.Workload) {
			desc, measured, verdict := c.judge(rep, t)
			p("| %s | %s | %s |\n", desc, measured, verdict)
		}
	}

	p("\n## Results\n")
	for _, w := range workloads {
		rs := rep.Results[w.Name]
		if len(rs) == 0 {
			continue
		}
		if w.Flood != "" {
			c.renderFairness(&b, w, rs)
			continue
		}
		p("\n### %s — %s\n\nwrk -c%d", w.Name, w.Desc, w.Connections)
		if w.Script != "" {
			p(" -s bench/%s", w.Script)
		}
		if w.Path != "" {
			p(" http://127.0.0.1:PORT%s", w.Path)
		}
		p("\n\n| server | req/s | p99 | errors | new connection |")
		var wsgos []result
		for _, r := range rs {
			if r.Server.Wsgo && r.Err == nil {
				wsgos = append(wsgos, r)
				p(" %s ÷ server |", r.Server.label(w))
			}
		}
		p("\n|---|--:|--:|---|--:|%s\n", strings.Repeat("--:|", len(wsgos)))
		for _, r := range rs {
			if r.Err != nil {
				p("| %s | failed | | %s | |%s\n", r.Server.label(w), firstLine(r.Err.Error()), strings.Repeat(" |", len(wsgos)))
				continue
			}
			p("| %s | %.0f | %s | %s | %s |", r.Server.label(w), r.Wrk.ReqPerSec, fmtDur(r.Wrk.P99), r.Wrk.errorText(), r.Wrk.Probe)
			for _, wr := range wsgos {
				if wr.Server.Name == r.Server.Name || r.Wrk.ReqPerSec == 0 {
					p(" — |")
				} else {
					p(" %.2f |", wr.Wrk.ReqPerSec/r.Wrk.ReqPerSec)
				}
			}
			p("\n")
		}
	}

	c.renderMemory(&b, rep)
	c.renderH2(&b, rep)
	return b.String()
}

// shownCommand is the command line of s on w as the report shows it: the
// free port as PORT, the static directory as STATIC_DIR, this program as
// bench and paths under the working directory relative.
func (c *config) shownCommand(s server, w workload) string {
	// 65535 stands in for the free port each run gets.
	argv, dir := s.Command(c, w, 65535)
	argv = append([]string{"taskset", "-c", c.serverCPU}, argv...)
	cmd := strings.ReplaceAll(strings.Join(argv, " "), "65535", "PORT")
	cmd = strings.ReplaceAll(cmd, c.self+" ", "bench ")
	if c.staticDir != "" {
		cmd = strings.ReplaceAll(cmd, c.staticDir, "STATIC_DIR")
	}
	if dir != "" {
		cmd = "(cd " + dir + "; " + cmd + ")"
	}
	return c.shorten(cmd)
}

// anyRuns reports whether any selected server runs w.
func (c *config) anyRuns(w workload) bool {
	for _, s := range servers {
		if c.selected(s.Name) && w.runs(s) {
			return true
		}
	}
	return false
}

// listCommands writes a list of the selected servers that run w, each with
// its command for w.
func (c *config) listCommands(b *strings.Builder, w workload) {
	for _, s := range servers {
		if c.selected(s.Name) && w.runs(s) {
			fmt.Fprintf(b, "- %s: `%s`\n", s.label(w), c.shownCommand(s, w))
		}
	}
}

// renderMemory writes the wsgo memory section.
func (c *config) renderMemory(b *strings.Builder, rep *report) {
	var idle *result
	for i, r := range rep.Results["hello"] {
		if r.Server.Name == "wsgo" && r.IdleMem != nil {
			idle = &rep.Results["hello"][i]
		}
	}
	if idle == nil && rep.Memory == nil && rep.MemErr == nil {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("\n## Memory (wsgo --workers 16, hello)\n\n")
	p("VmRSS and VmHWM (peak) of the wsgo process from /proc/PID/status, each read one second after the load stopped.\n")
	if rep.Memory != nil || rep.MemErr != nil {
		p("The counts come from a fresh server driven with `wrk -t1 -c50 -s bench/stopafter.lua URL -- N`: wrk has no request-count option, so the script counts responses, stops its thread at N and prints a line on which the harness sends wrk SIGINT; the request counts are wrk's own (cumulative, plus the one check request).\n")
	}
	p("\n| point | requests | VmRSS | VmHWM |\n|---|--:|--:|--:|\n")
	if idle != nil {
		p("| idle after the hello run above (its own server; -c50, %s warm-up not counted) | %s | %s | %s |\n",
			c.warmup, fmtCount(idle.Wrk.Requests), fmtKiB(idle.IdleMem.RSS), fmtKiB(idle.IdleMem.HWM))
	}
	for _, m := range rep.Memory {
		p("| %s | %s | %s | %s |\n", m.Label, fmtCount(m.Requests), fmtKiB(m.Mem.RSS), fmtKiB(m.Mem.HWM))
	}
	if rep.MemErr != nil {
		p("\nMemory measurement failed: %s\n", firstLine(rep.MemErr.Error()))
	}
}

// judge evaluates one target.
func (c *config) judge(rep *report, t target) (desc, measured, verdict string) {
	if t.MaxP99 > 0 {
		return c.judgeFairness(rep, t)
	}
	find := func(workload, name string) *result {
		for i, r := range rep.Results[workload] {
			if r.Server.Name == name {
				return &rep.Results[workload][i]
			}
		}
		return nil
	}
	wl, _ := findWorkload(t.Workload)
	pw := wl
	if t.PeerWorkload != "" {
		pw, _ = findWorkload(t.PeerWorkload)
	}
	// on names the peers' workload when it is another one.
	on := ""
	if pw.Name != wl.Name {
		on = " on " + pw.Name
	}
	ws, _ := findServer(t.Wsgo)
	var labels []string
	for _, n := range t.Peers {
		s, _ := findServer(n)
		labels = append(labels, s.label(pw))
	}
	bar := labels[0] + on
	if len(labels) > 1 {
		bar = "best thread/process peer (" + strings.Join(labels, "; ") + ")" + on
	}
	switch {
	case t.Info:
		desc = fmt.Sprintf("%s: %s ÷ %s (for information)", wl.Name, ws.label(wl), bar)
	case t.Factor == 1:
		desc = fmt.Sprintf("%s: %s ≥ %s", wl.Name, ws.label(wl), bar)
	default:
		desc = fmt.Sprintf("%s: %s ≥ %g × %s", wl.Name, ws.label(wl), t.Factor, bar)
	}
	w := find(wl.Name, t.Wsgo)
	var best *result
	for _, n := range t.Peers {
		if r := find(pw.Name, n); r != nil && r.Err == nil && r.Wrk.ReqPerSec > 0 && (best == nil || r.Wrk.ReqPerSec > best.Wrk.ReqPerSec) {
			best = r
		}
	}
	switch {
	case w == nil || best == nil:
		if !contains(c.only, pw.Name) {
			return desc, "not measured (" + pw.Name + " was not run)", "n/a"
		}
		return desc, "not measured", "n/a"
	case w.Err != nil:
		return desc, "wsgo failed", "FAIL"
	}
	ratio, each := pairedRatio(w.rounds(), best.rounds())
	measured = fmt.Sprintf("%.0f vs %.0f (%s) req/s", w.Wrk.ReqPerSec, best.Wrk.ReqPerSec, best.Server.label(pw)+on)
	if len(each) == 1 {
		measured += fmt.Sprintf(" = %.2f×", ratio)
	} else {
		var parts []string
		for _, r := range each {
			parts = append(parts, fmt.Sprintf("%.2f", r))
		}
		measured += fmt.Sprintf("; per-round ratios %s, median %.2f×", strings.Join(parts, ", "), ratio)
	}
	switch {
	case w.Wrk.errors() > 0:
		return desc, measured + "; wsgo had errors: " + w.Wrk.errorText(), "FAIL"
	case t.Info:
		return desc, measured, "info"
	case ratio >= t.Factor:
		return desc, measured, "PASS"
	default:
		return desc, measured, "FAIL"
	}
}

// pairedRatio is the median (the lower of the middle two for an even count)
// of wsgo's req/s over the peer's in each round, with the ratios in round
// order. Within a round a workload's servers run one after the other,
// seconds apart, while the machine's speed drifts by as much as a fifth
// over minutes, between rounds; the ratio of two medians, which may come
// from different rounds, would carry that drift, a ratio within a round
// hardly any (cached against wsgo's hello pairs runs further apart, but
// still of one round). run gives every job one run per round, so the two
// lists are as long as each other.
func pairedRatio(wsgo, peer []result) (ratio float64, each []float64) {
	for k := range min(len(wsgo), len(peer)) {
		each = append(each, wsgo[k].Wrk.ReqPerSec/peer[k].Wrk.ReqPerSec)
	}
	return lowerMedian(each, cmp.Compare[float64]), each
}

func repeatText(n int) string {
	if n == 1 {
		return ""
	}
	return fmt.Sprintf("; this is done %d times, in rounds that go through every server and workload before the next round starts (so that a drift in the machine's speed touches every server alike), and the results show the median run by req/s", n)
}

// busy reports whether a /proc/loadavg triple shows a 1-minute load of 1 or
// more: on two CPUs, more than the benchmark's own.
func busy(load string) bool {
	f := strings.Fields(load)
	if len(f) == 0 {
		return false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return err == nil && v >= 1
}

// makeBenchCommand is what `make bench` runs.
const makeBenchCommand = "go run ./bench -out BENCHMARKS.md"

// commandLine is the exact command that produced the report.
func (c *config) commandLine() string {
	return strings.TrimSpace("go run ./bench " + strings.Join(c.args, " "))
}

// shorten makes absolute paths under the working directory relative.
func (c *config) shorten(s string) string {
	if wd, err := os.Getwd(); err == nil {
		s = strings.ReplaceAll(s, wd+"/", "")
	}
	return s
}

// machineInfo lists the facts about the machine and the software measured.
func machineInfo(c *config, started time.Time) [][2]string {
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = "Linux " + strings.TrimSpace(string(b))
	}
	versions := commandOutput(c.python, "-c", `
import importlib.metadata as m
print(", ".join("%s %s" % (p, m.version(p)) for p in ("gunicorn", "gevent", "waitress", "Django")))`)
	return [][2]string{
		{"CPU", fmt.Sprintf("%s (%d CPUs online)", cpu, runtime.NumCPU())},
		{"Kernel", kernel},
		{"Python", commandOutput(c.python, "--version") + " (" + c.python + ")"},
		{"Servers", versions + ", uWSGI " + commandOutput("uwsgi", "--version")},
		{"wrk", strings.TrimSuffix(firstLine(commandOutput("wrk", "-v")), " Copyright (C) 2012 Will Glozer")},
		{"Go (harness, floor)", runtime.Version()},
		{"Date", started.UTC().Format("2006-01-02 15:04 UTC")},
	}
}

// commandOutput runs a short command and returns its trimmed output, or
// "unknown".
func commandOutput(name string, args ...string) string {
	out, _ := exec.Command(name, args...).CombinedOutput()
	s := strings.TrimSpace(string(out))
	if s == "" {
		return "unknown"
	}
	return s
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return strings.ReplaceAll(line, "|", "\\|")
}

// fmtDur formats a latency in the most readable unit.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

// fmtKiB formats a size given in KiB as MiB.
func fmtKiB(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

// fmtCount formats a count with thousands separators.
func fmtCount(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
