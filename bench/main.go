// Command bench measures wsgo against other WSGI servers and writes
// BENCHMARKS.md; `make bench` runs it as
//
//	go run ./bench -out BENCHMARKS.md
//
// Every server runs as one worker process pinned to one CPU (taskset -c 0),
// and wrk, with one thread, runs pinned to another (taskset -c 1), both on
// 127.0.0.1 with a free port. For each workload (the Python applications
// under bench/apps, a static file the harness writes, a page from wsgo's
// response cache) each server is started afresh, one response is checked
// with a plain Go HTTP request, wrk warms it up and then measures it, and the
// server is stopped (SIGTERM, then SIGKILL after a bound) before the next.
// The report gives requests/s, p99 latency and wsgo's ratio to each peer per
// workload, the targets wsgo must meet, wsgo's memory after a million
// requests, and (h2load.go) wsgo's hello over HTTP/1.1 and HTTP/2, in
// cleartext and over TLS, measured with h2load.
//
// The Go floors are this program itself, re-executed as `-floor-server PORT`
// (a net/http handler writing hello's body) or `-fileserver-floor PORT DIR`
// (http.FileServer of DIR under /static).
//
// Progress goes to stderr; the server logs, and the static files, go to a
// temporary directory that is kept when something fails.
package main

import (
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"wsgo/internal/procstat"
)

// config holds the flags and the paths derived from them.
type config struct {
	out         string
	duration    time.Duration
	warmup      time.Duration
	quick       bool
	repeat      int
	only        []string // workloads (and "memory"), in table order
	servers     []string // server names, in table order
	wsgo        string   // path of the wsgo binary
	python      string   // interpreter that runs gunicorn and waitress
	benchDir    string   // absolute path of the bench directory
	appsDir     string   // benchDir/apps
	serverCPU   string
	wrkCPU      string
	peerLogs    bool
	memRequests []int64
	startWait   time.Duration
	stopWait    time.Duration
	wrkTimeout  time.Duration
	self        string // this program's executable, for the Go floors
	logDir      string // server stderr logs
	staticDir   string // logDir/static: the files of the Static workloads
	args        []string
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-floor-server" {
		floorServer(os.Args[2])
		return
	}
	if len(os.Args) == 4 && os.Args[1] == "-fileserver-floor" {
		fileServerFloor(os.Args[2], os.Args[3])
		return
	}
	c, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	failed, err := run(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d run(s) failed; server logs kept in %s\n", failed, c.logDir)
		os.Exit(1)
	}
	os.RemoveAll(c.logDir)
}

// parseFlags reads the command line into a config.
func parseFlags(args []string) (*config, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	c := &config{args: args}
	var only, srv, mem, benchDir string
	fs.StringVar(&c.out, "out", "-", "write the Markdown report to this file (- for stdout)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of each measured wrk run (whole seconds)")
	fs.DurationVar(&c.warmup, "warmup", 2*time.Second, "length of the wrk warm-up before each measured run (0 for none)")
	fs.IntVar(&c.repeat, "repeat", 1, "measured wrk runs per server and workload, taken in rounds over all servers so that a drift in the machine's speed touches every server alike; the median by req/s is reported, and each target takes the median of its per-round ratios")
	fs.BoolVar(&c.quick, "quick", false, "smoke run: -duration 2s -warmup 1s -mem-requests 10000,100000 unless given")
	fs.StringVar(&only, "only", "", "comma-separated workloads to run, and/or \"memory\" and \"h2\" (default all): "+strings.Join(workloadNames(), ","))
	fs.StringVar(&srv, "servers", "", "comma-separated servers to run (default all): "+strings.Join(serverNames(), ","))
	fs.StringVar(&c.wsgo, "wsgo", "bin/wsgo", "path of the wsgo binary")
	fs.StringVar(&c.python, "python", "/usr/bin/python3", "Python that runs gunicorn and waitress (uWSGI's python3 plugin embeds Debian's)")
	fs.StringVar(&benchDir, "benchdir", "bench", "directory holding apps/ and the wrk scripts")
	fs.StringVar(&c.serverCPU, "server-cpu", "0", "CPU list the servers are pinned to (taskset -c)")
	fs.StringVar(&c.wrkCPU, "wrk-cpu", "1", "CPU list wrk is pinned to (taskset -c)")
	fs.BoolVar(&c.peerLogs, "peer-logs", true, "let gunicorn and uWSGI log every request (to /dev/null), as wsgo does")
	fs.StringVar(&mem, "mem-requests", "100000,1000000", "cumulative hello request counts after which wsgo's RSS is read")
	fs.DurationVar(&c.startWait, "start-timeout", 30*time.Second, "how long a server may take to start listening")
	fs.DurationVar(&c.stopWait, "stop-timeout", 10*time.Second, "how long a server may take to exit after SIGTERM")
	fs.DurationVar(&c.wrkTimeout, "wrk-timeout", 10*time.Second, "wrk's --timeout: a response slower than this counts as a timeout error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		if !set["duration"] {
			c.duration = 2 * time.Second
		}
		if !set["warmup"] {
			c.warmup = time.Second
		}
		if !set["mem-requests"] {
			mem = "10000,100000"
		}
	}
	if c.repeat < 1 || c.repeat > 20 {
		return nil, fmt.Errorf("-repeat: want 1 to 20, got %d", c.repeat)
	}
	var err error
	if c.only, err = pick(only, append(workloadNames(), "memory", "h2")); err != nil {
		return nil, fmt.Errorf("-only: %v", err)
	}
	if c.servers, err = pick(srv, serverNames()); err != nil {
		return nil, fmt.Errorf("-servers: %v", err)
	}
	for _, f := range strings.Split(mem, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil || n <= 0 || (len(c.memRequests) > 0 && n <= c.memRequests[len(c.memRequests)-1]) {
			return nil, fmt.Errorf("-mem-requests: want increasing positive counts, got %q", mem)
		}
		c.memRequests = append(c.memRequests, n)
	}
	if c.benchDir, err = filepath.Abs(benchDir); err != nil {
		return nil, err
	}
	c.appsDir = filepath.Join(c.benchDir, "apps")
	if _, err := os.Stat(filepath.Join(c.appsDir, "hello.py")); err != nil {
		return nil, fmt.Errorf("no apps in %s (run from the repository root or give -benchdir): %v", c.appsDir, err)
	}
	if c.selectedWsgo() {
		if c.wsgo, err = filepath.Abs(c.wsgo); err != nil {
			return nil, err
		}
		if _, err := os.Stat(c.wsgo); err != nil {
			return nil, fmt.Errorf("-wsgo: %v (make build, or leave wsgo out with -servers)", err)
		}
	}
	if c.self, err = os.Executable(); err != nil {
		return nil, err
	}
	if err := loadPost64kBody(c.scriptPath("post64k.lua")); err != nil {
		return nil, err
	}
	return c, nil
}

// pick splits a comma-separated list and checks every name against known,
// returning the chosen names in known's order (all of them for "").
func pick(list string, known []string) ([]string, error) {
	if strings.TrimSpace(list) == "" {
		return known, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		found := false
		for _, k := range known {
			found = found || k == n
		}
		if !found {
			return nil, fmt.Errorf("unknown name %q (known: %s)", n, strings.Join(known, ", "))
		}
		want[n] = true
	}
	var out []string
	for _, k := range known {
		if want[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

func workloadNames() []string {
	var n []string
	for _, w := range workloads {
		n = append(n, w.Name)
	}
	return n
}

func serverNames() []string {
	var n []string
	for _, s := range servers {
		n = append(n, s.Name)
	}
	return n
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *config) selected(server string) bool { return contains(c.servers, server) }

// selectedWsgo reports whether any wsgo configuration is to run.
func (c *config) selectedWsgo() bool {
	for _, s := range servers {
		if s.Wsgo && c.selected(s.Name) {
			return true
		}
	}
	return false
}

// staticMap is the mapping the servers get for a Static workload, in the
// --static-map form that wsgo and uWSGI share.
func (c *config) staticMap() string { return staticMount + "=" + c.staticDir }

// writeStatic writes the static files of the Static workloads to
// c.staticDir.
func (c *config) writeStatic() error {
	if err := os.MkdirAll(c.staticDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.staticDir, staticFile50k), file50k, 0o644)
}

// result is the outcome of one server on one workload.
type result struct {
	Server  server
	Command []string
	Wrk     wrkResult
	Err     error
	// IdleMem is wsgo's memory a second after the hello load (hello only).
	IdleMem *procstat.Memory
	// Fair is the polite client's figures (fairness workloads only; Wrk
	// is then the flood's).
	Fair *fairResult
	// Rounds holds every round's run, in round order, on the result run
	// reports (the median, which is one of them). The machine's speed
	// drifts between rounds, so the targets compare wsgo with a peer
	// round by round, where the two ran seconds apart (see pairedRatio),
	// rather than by medians that may come from different rounds. A result
	// without Rounds is its own only round (see rounds).
	Rounds []result
}

// rounds is every round's run of r.
func (r *result) rounds() []result {
	if len(r.Rounds) == 0 {
		return []result{*r}
	}
	return r.Rounds
}

// report gathers everything BENCHMARKS.md shows.
type report struct {
	Started time.Time
	// 1, 5 and 15-minute load averages before and after the runs.
	LoadStart, LoadEnd string
	Results            map[string][]result // by workload name, in server order
	Memory             []memPoint
	MemErr             error
	// H2 is the HTTP/2 measurement (h2load.go).
	H2    []h2Result
	H2Err error
}

// run executes every selected workload on every selected server, then the
// memory measurement, writes the report and returns how many runs failed.
func run(c *config) (int, error) {
	var err error
	if c.logDir, err = os.MkdirTemp("", "wsgo-bench-"); err != nil {
		return 0, err
	}
	c.staticDir = filepath.Join(c.logDir, "static")
	rep := &report{Started: time.Now(), LoadStart: loadAvg(), Results: map[string][]result{}}
	type job struct {
		w workload
		s server
	}
	var jobs []job
	static := false
	for _, w := range workloads {
		if !contains(c.only, w.Name) {
			continue
		}
		for _, s := range servers {
			if c.selected(s.Name) && w.runs(s) {
				jobs = append(jobs, job{w, s})
				static = static || w.Static
			}
		}
	}
	if static {
		if err := c.writeStatic(); err != nil {
			return 0, err
		}
	}
	fmt.Fprintf(os.Stderr, "bench: %d runs of %d × %s (+%s warm-up) each; server logs in %s\n",
		len(jobs), c.repeat, c.duration, c.warmup, c.logDir)
	if busy(rep.LoadStart) {
		fmt.Fprintf(os.Stderr, "bench: warning: load average is %s; other work on this machine will skew the figures\n", rep.LoadStart)
	}
	failed := 0
	rounds := make([][]result, len(jobs))
	for round := 1; round <= c.repeat; round++ {
		for i, j := range jobs {
			fmt.Fprintf(os.Stderr, "[round %d/%d, %d/%d] %-9s %-17s ", round, c.repeat, i+1, len(jobs), j.w.Name, j.s.Name)
			r := c.runOne(j.s, j.w)
			if r.Err != nil {
				fmt.Fprintf(os.Stderr, "FAILED: %v\n", r.Err)
			} else if r.Fair != nil {
				progressFairness(r)
			} else {
				fmt.Fprintf(os.Stderr, "%10.0f req/s  p99 %-9s  new conn %-11s  errors %s\n",
					r.Wrk.ReqPerSec, fmtDur(r.Wrk.P99), r.Wrk.Probe, r.Wrk.errorText())
			}
			rounds[i] = append(rounds[i], r)
		}
	}
	for i, j := range jobs {
		r := median(rounds[i])
		r.Rounds = rounds[i]
		if r.Err != nil {
			failed++
		}
		rep.Results[j.w.Name] = append(rep.Results[j.w.Name], r)
	}
	if contains(c.only, "memory") && c.selected("wsgo") && len(c.memRequests) > 0 {
		rep.Memory, rep.MemErr = c.measureMemory()
		if rep.MemErr != nil {
			failed++
			fmt.Fprintf(os.Stderr, "memory: FAILED: %v\n", rep.MemErr)
		}
	}
	if contains(c.only, "h2") && c.selected("wsgo") {
		if rep.H2, rep.H2Err = c.measureH2(); rep.H2Err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "h2: FAILED: %v\n", rep.H2Err)
		}
		for _, r := range rep.H2 {
			if r.Err != nil {
				failed++
			}
		}
	}
	rep.LoadEnd = loadAvg()
	md := c.render(rep)
	// The profile analysis is written by hand from perf runs and travels
	// with every regenerated report.
	if analysis, err := os.ReadFile(filepath.Join(c.benchDir, "ANALYSIS.md")); err == nil {
		md += "\n" + string(analysis)
	}
	if c.out == "-" {
		_, err = os.Stdout.WriteString(md)
	} else {
		err = os.WriteFile(c.out, []byte(md), 0o644)
		fmt.Fprintf(os.Stderr, "bench: wrote %s\n", c.out)
	}
	return failed, err
}

// runOne starts s for w, checks one response, warms it up, measures it with
// wrk and stops it.
func (c *config) runOne(s server, w workload) (r result) {
	r.Server = s
	p, err := startServer(c, s, w)
	if err != nil {
		r.Err = fmt.Errorf("start: %v", err)
		return r
	}
	r.Command = p.argv
	defer func() {
		if err := p.stop(c.stopWait); err != nil && r.Err == nil {
			r.Err = fmt.Errorf("stop: %v", err)
		}
		if r.Err != nil {
			if tail := p.logTail(15); tail != "" {
				r.Err = fmt.Errorf("%v\n    stderr (%s):\n    %s", r.Err, p.logPath,
					strings.ReplaceAll(tail, "\n", "\n    "))
			}
		}
	}()
	if err := p.waitReady(c.startWait, s.ReadyLine); err != nil {
		r.Err = fmt.Errorf("start: %v", err)
		return r
	}
	url := "http://" + addr(p.port) + w.path()
	if err := checkResponse(url, w); err != nil {
		r.Err = fmt.Errorf("check: %v", err)
		return r
	}
	if w.MaxAge > 0 {
		if err := checkCaching(url, w, s.caches(w)); err != nil {
			r.Err = fmt.Errorf("check: %v", err)
			return r
		}
	}
	if w.Flood != "" {
		if err := c.runFairness(p, w, &r); err != nil {
			r.Err = err
		}
		return r
	}
	run := wrkRun{URL: url, Connections: w.Connections, Script: c.scriptPath(w.Script)}
	if c.warmup > 0 {
		run.Duration = c.warmup
		if _, err := c.runWrk(run); err != nil {
			r.Err = fmt.Errorf("warm-up: %v", err)
			return r
		}
		// A server may still be working through requests from connections
		// the warm-up left behind (a sync worker's backlog, waitress's task
		// queue); the check waits behind them, so the measured run starts
		// on an idle server.
		if err := checkResponse(url, w); err != nil {
			r.Err = fmt.Errorf("check after warm-up: %v", err)
			return r
		}
	}
	run.Duration = c.duration
	if r.Wrk, err = c.measure(run, url, w); err != nil {
		r.Err = err
		return r
	}
	if s.Wsgo && w.Name == "hello" {
		time.Sleep(time.Second)
		if m, err := readMem(p.cmd.Process.Pid); err == nil {
			r.IdleMem = &m
		}
	}
	return r
}

// median is the median result by req/s, or for a fairness workload by the
// polite clients' p99 under the flood (for an even count the worse of the
// middle two); a failed round makes the whole result failed.
func median(results []result) result {
	for _, r := range results {
		if r.Err != nil {
			return r
		}
	}
	return lowerMedian(results, func(a, b result) int {
		if a.Fair != nil && b.Fair != nil {
			return cmp.Compare(b.Fair.Flood.P99, a.Fair.Flood.P99)
		}
		return cmp.Compare(a.Wrk.ReqPerSec, b.Wrk.ReqPerSec)
	})
}

// lowerMedian is the middle of xs, which must not be empty, in the order
// compare gives, worse first; for an even count it is the lower (worse) of
// the middle two, so that a figure from few rounds errs against the
// server measured. xs is left as it is.
func lowerMedian[T any](xs []T, compare func(a, b T) int) T {
	sorted := slices.Clone(xs)
	slices.SortStableFunc(sorted, compare)
	return sorted[(len(sorted)-1)/2]
}

// checkResponse makes one request with Go's HTTP client, on a connection
// of its own, and checks status, framing and body.
func checkResponse(url string, w workload) error {
	return checkResponseTimeout(url, w, time.Minute)
}

// checkResponseTimeout is checkResponse with a bound on the whole exchange.
func checkResponseTimeout(url string, w workload, timeout time.Duration) error {
	h, b, err := fetch(url, w, timeout)
	if err != nil {
		return err
	}
	return w.Check(h, b)
}

// checkCaching makes two more requests for a cached page, after the check
// that filled the cache, and makes sure that they got the same rendering
// (cachedpage.py's render counter) when the server is meant to answer from
// its cache, and different ones when it is not.
func checkCaching(url string, w workload, cached bool) error {
	var renders [2]string
	for i := range renders {
		h, b, err := fetch(url, w, time.Minute)
		if err == nil {
			err = w.Check(h, b)
		}
		if err != nil {
			return err
		}
		renders[i] = renderCount(b)
	}
	switch {
	case cached && renders[0] != renders[1]:
		return fmt.Errorf("not answered from the cache: two requests in a row got renders %s and %s", renders[0], renders[1])
	case !cached && renders[0] == renders[1]:
		return fmt.Errorf("answered from a cache (render %s twice) where none should be", renders[0])
	}
	return nil
}

// fetch makes one request with Go's HTTP client, on a connection of its
// own, and checks status and framing; it returns the headers and body.
func fetch(url string, w workload, timeout time.Duration) (http.Header, []byte, error) {
	client := &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DisableKeepAlives: true, DisableCompression: true},
	}
	method := w.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if method == http.MethodPost {
		body = bytes.NewReader(post64kBody)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("reading body: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("status %s, body %q", resp.Status, truncate(b, 200))
	}
	if resp.ContentLength < 0 && !contains(resp.TransferEncoding, "chunked") {
		return nil, nil, fmt.Errorf("body delimited by closing the connection, which wrk cannot measure")
	}
	return resp.Header, b, nil
}

// loadAvg returns the three load averages from /proc/loadavg, or "".
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// floorServer is the pure-Go floor for the hello workload: net/http writing
// the same 12 bytes. main runs it for `-floor-server PORT`, re-executed
// under taskset like every other server.
func floorServer(port string) {
	body := []byte("Hello world!")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "12")
		w.Write(body)
	})
	if err := http.ListenAndServe("127.0.0.1:"+port, h); err != nil {
		fmt.Fprintln(os.Stderr, "floor server:", err)
		os.Exit(1)
	}
}

// fileServerFloor is the pure-Go floor for the static50k workload:
// net/http's FileServer of dir under staticMount (which sends a file with
// sendfile), with no logging. main runs it for `-fileserver-floor PORT DIR`.
func fileServerFloor(port, dir string) {
	h := http.StripPrefix(staticMount, http.FileServer(http.Dir(dir)))
	if err := http.ListenAndServe("127.0.0.1:"+port, h); err != nil {
		fmt.Fprintln(os.Stderr, "file server floor:", err)
		os.Exit(1)
	}
}
