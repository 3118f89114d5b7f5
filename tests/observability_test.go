package tests

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The access log formats, --log-file and its reopening, the metrics and
// health check of --stats-socket, the config file and WSGO_* variables,
// and the start-up line.

// ---- access log ----

// combinedTailRE matches the end of a combined line: duration, worker and
// priority.
var combinedTailRE = regexp.MustCompile(`" \d+\.\d{3}ms (w\d+|w-) (p-?\d+|p-)$`)

// TestAccessLogCombinedWorkerAndPriority: a combined line ends with the
// duration, the worker and the priority the queue took the request at.
func TestAccessLogCombinedWorkerAndPriority(t *testing.T) {
	t.Parallel()
	s := startServer(t, "hello")
	wantStatus(t, get(t, s.URL+"/combined/plain"), 200)
	wantStatus(t, get(t, s.URL+"/combined/query?q=1"), 200)
	for path, priority := range map[string]string{"/combined/plain ": "p1000", "/combined/query?q=1 ": "p500"} {
		s.WaitStdout(t, path)
		line := lineWith(s.Stdout(), path)
		m := combinedTailRE.FindStringSubmatch(line)
		if m == nil || !strings.HasPrefix(m[1], "w") || m[1] == "w-" || m[2] != priority {
			t.Errorf("line %q: want a worker and %s at its end", line, priority)
		}
	}
}

// lineWith returns the first line of text containing substr.
func lineWith(text, substr string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// TestAccessLogJSONHostileHeaders: with --log-format json every line is one
// JSON object, and header values made to look like JSON stay inside their
// field, whole.
func TestAccessLogJSONHostileHeaders(t *testing.T) {
	t.Parallel()
	s := startServer(t, "hello", "--log-format", "json")
	ua := `ua", "status": 999, "worker": "forged` + "\xff\xfe \xe2\x80\xa8\tend\\"
	referer := `}{"method":"FORGED"}` + "\\\"\xc3"
	uri := `/json/"quoted"\back?q="}{\u0022`
	rc := dialRaw(t, s)
	rc.send("GET " + uri + " HTTP/1.1\r\nHost: example\r\nUser-Agent: " + ua + "\r\nReferer: " + referer +
		"\r\nConnection: close\r\n\r\n")
	wantStatus(t, rc.mustResponse("GET"), 200)
	wantStatus(t, get(t, s.URL+"/json/plain"), 200)

	s.WaitStdout(t, "/json/plain")
	var entries []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.Stdout()), "\n") {
		var e map[string]any
		dec := json.NewDecoder(strings.NewReader(line))
		dec.UseNumber()
		if err := dec.Decode(&e); err != nil || dec.More() {
			t.Fatalf("not one JSON object (%v): %q", err, line)
		}
		entries = append(entries, e)
	}
	if len(entries) != 2 {
		t.Fatalf("%d lines for 2 requests:\n%s", len(entries), s.Stdout())
	}
	// Bytes that are not UTF-8 come back as U+FFFD, one each, as
	// encoding/json has them.
	valid := func(s string) (v string) {
		b, _ := json.Marshal(s)
		json.Unmarshal(b, &v)
		return v
	}
	e := entries[0]
	want := map[string]any{"client": "127.0.0.1", "method": "GET", "uri": uri, "proto": "HTTP/1.1",
		"status": json.Number("200"), "bytes": json.Number("12"), "user_agent": valid(ua), "referer": valid(referer),
		"priority": json.Number("500")} // it has a query
	for k, v := range want {
		if e[k] != v {
			t.Errorf("%s = %#v, want %#v", k, e[k], v)
		}
	}
	if w, ok := e["worker"].(json.Number); !ok || w.String() == "" {
		t.Errorf("worker = %#v, want a number", e["worker"])
	}
	if ts, _ := e["time"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`).MatchString(ts) {
		t.Errorf("time = %q", ts)
	}
	if _, err := strconv.ParseFloat(fmt.Sprint(e["duration_ms"]), 64); err != nil {
		t.Errorf("duration_ms = %#v", e["duration_ms"])
	}
	if len(e) != 12 {
		t.Errorf("%d fields, want 12: %v", len(e), e)
	}
}

// TestAccessLogOff: --log-format off logs nothing, and serves as usual.
func TestAccessLogOff(t *testing.T) {
	t.Parallel()
	s := startServer(t, "hello", "--log-format", "off")
	for range 3 {
		wantStatus(t, get(t, s.URL+"/off"), 200)
	}
	time.Sleep(300 * time.Millisecond) // three flush intervals
	if out := s.Stdout(); out != "" {
		t.Errorf("access log with --log-format off:\n%s", out)
	}
}

// TestAccessLogFileReopen: two processes append to one --log-file in whole
// lines; after the file is renamed, SIGWINCH makes both write to a new one.
func TestAccessLogFileReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "access.log")
	s := startServer(t, "hello", "--processes", "2", "--workers", "2", "--log-file", logFile)
	load := startLoad(t, freshClient(waitTimeout), s.URL+"/before-rotation", 4)
	waitFor(t, waitTimeout, "requests before the rotation", func() bool { return load.OK() >= 100 })
	load.Stop()
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	mark := s.stderr.Len()
	s.Signal(t, syscall.SIGWINCH)
	s.stderr.waitUntil(func(out string) bool { return strings.Count(out[mark:], `msg="access log reopened"`) == 2 }, waitTimeout, s.exited)
	if n := strings.Count(s.Stderr()[mark:], `msg="access log reopened"`); n != 2 {
		t.Fatalf("%d processes said they reopened the log, want 2; stderr:\n%s", n, tail(s.Stderr()))
	}
	const after = 20
	c := freshClient(waitTimeout)
	for range after {
		if status, _, err := fetch(c, s.URL+"/after-rotation"); err != nil || status != 200 {
			t.Fatalf("GET /after-rotation = %d, %v", status, err)
		}
	}
	waitFor(t, waitTimeout, "the lines after the rotation", func() bool {
		b, _ := os.ReadFile(logFile)
		return strings.Count(string(b), "/after-rotation") == after
	})
	old, _ := os.ReadFile(logFile + ".1")
	cur, _ := os.ReadFile(logFile)
	if strings.Contains(string(old), "/after-rotation") || strings.Contains(string(cur), "/before-rotation") {
		t.Errorf("lines in the wrong file: %d after in the old, %d before in the new",
			strings.Count(string(old), "/after-rotation"), strings.Count(string(cur), "/before-rotation"))
	}
	if got := strings.Count(string(old), "/before-rotation"); int64(got) != load.OK() {
		t.Errorf("old file has %d lines of the %d requests before the rotation", got, load.OK())
	}
	for _, text := range []string{string(old), string(cur)} {
		for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if !strings.HasPrefix(line, "127.0.0.1 - - [") || !combinedTailRE.MatchString(line) {
				t.Fatalf("a line is not whole: %q", line)
			}
		}
	}
	if s.Stdout() != "" {
		t.Errorf("access log lines on stdout with --log-file:\n%s", tail(s.Stdout()))
	}
}

// ---- metrics and health ----

var statsRE = regexp.MustCompile(`wsgo: stats on (http://127\.0\.0\.1:\d+)/metrics and /healthz`)

// statsURL is the server's --stats-socket base URL, from its stderr.
func statsURL(t testing.TB, s *server) string {
	t.Helper()
	m := statsRE.FindStringSubmatch(s.Stderr())
	if m == nil {
		t.Fatalf("no %q line; stderr:\n%s", "wsgo: stats on", tail(s.Stderr()))
	}
	return m[1]
}

// sampleRE matches one sample of the Prometheus text format.
var sampleRE = regexp.MustCompile(`(?m)^([a-z_]+(?:\{[^}]*\})?) (\S+)$`)

// scrape fetches /metrics and returns its samples by series, as written
// ("name{label=\"value\",...}").
func scrape(t testing.TB, base string) map[string]float64 {
	t.Helper()
	r := get(t, base+"/metrics")
	wantStatus(t, r, 200)
	samples := map[string]float64{}
	for _, m := range sampleRE.FindAllStringSubmatch(r.String(), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", m[0], err)
		}
		samples[m[1]] = v
	}
	return samples
}

// wantSamples fails the test unless each series has its value.
func wantSamples(t testing.TB, got map[string]float64, want map[string]float64) {
	t.Helper()
	for series, v := range want {
		if g, ok := got[series]; !ok || g != v {
			t.Errorf("%s = %v (present: %v), want %v", series, g, ok, v)
		}
	}
}

// waitSamples scrapes until each series has its value, failing the test
// after waitTimeout.
func waitSamples(t testing.TB, base string, want map[string]float64) {
	t.Helper()
	var got map[string]float64
	deadline := time.Now().Add(waitTimeout)
	for {
		got = scrape(t, base)
		ok := true
		for series, v := range want {
			ok = ok && got[series] == v
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			wantSamples(t, got, want)
			t.FailNow()
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMetricsMatchTraffic: /metrics on --stats-socket sums both processes'
// counts of the requests sent, keeps them when a process is killed and
// replaced, and when a reload replaces every process.
func TestMetricsMatchTraffic(t *testing.T) {
	t.Parallel()
	s := startServer(t, "cacheapp", "--processes", "2", "--workers", "3", "--max-age", "60",
		"--stats-socket", "127.0.0.1:0")
	stats := statsURL(t, s)

	// One connection: one process, whose cache answers all but the first.
	keepAlive := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{MaxConnsPerHost: 1}}
	for range 5 {
		if status, _, err := fetch(keepAlive, s.URL+"/cached?cc=max-age%3D60"); err != nil || status != 200 {
			t.Fatalf("GET /cached = %d, %v", status, err)
		}
	}
	// Fresh connections, spread over both processes.
	fresh := freshClient(waitTimeout)
	for range 10 {
		if status, _, err := fetch(fresh, s.URL+"/missing?status=404"); err != nil || status != 404 {
			t.Fatalf("GET /missing = %d, %v", status, err)
		}
	}
	post := func(n int) {
		for range n {
			resp, err := fresh.Post(s.URL+"/posted", "text/plain", strings.NewReader("body"))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("POST /posted = %v, %v", resp, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	post(3)

	// (Polled: a worker marks itself idle just after its answer has gone.)
	waitSamples(t, stats, map[string]float64{
		`wsgo_requests_total{method="GET",status="200"}`:  5,
		`wsgo_requests_total{method="GET",status="404"}`:  10,
		`wsgo_requests_total{method="POST",status="200"}`: 3,
		`wsgo_request_duration_seconds_count`:             18,
		`wsgo_queue_wait_seconds_count`:                   14, // cache hits do not queue
		`wsgo_cache_hits_total`:                           4,
		`wsgo_cache_misses_total`:                         11,
		`wsgo_cache_entries`:                              1,
		`wsgo_workers`:                                    6,
		`wsgo_workers_busy`:                               0,
		`wsgo_queue_length`:                               0,
		`wsgo_request_timeouts_total`:                     0,
		`wsgo_workers_stuck`:                              0,
		`wsgo_processes_accepting`:                        2,
		`wsgo_worker_restarts_total{reason="exit"}`:       0,
		`wsgo_parked_requests`:                            0,
		`wsgo_blocked_clients`:                            0,
	})
	got := scrape(t, stats)
	for _, series := range []string{`wsgo_python_allocated_blocks{process="1"}`, `wsgo_python_allocated_blocks{process="2"}`,
		`wsgo_python_gc_objects{generation="0",process="1"}`, `process_resident_memory_bytes{process="2"}`,
		`wsgo_cache_size_bytes`, `wsgo_request_duration_seconds_bucket{le="+Inf"}`} {
		if _, ok := got[series]; !ok {
			t.Errorf("no %s", series)
		}
	}
	if got[`wsgo_python_allocated_blocks{process="1"}`] <= 0 || got[`wsgo_cache_size_bytes`] <= 0 {
		t.Fatalf("python blocks %v, cache size %v: want them above 0",
			got[`wsgo_python_allocated_blocks{process="1"}`], got[`wsgo_cache_size_bytes`])
	}

	// A worker process killed: its counts stay, and the restart is counted.
	kids := s.Children(t)
	if err := syscall.Kill(kids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitSamples(t, stats, map[string]float64{
		`wsgo_worker_restarts_total{reason="exit"}`:       1,
		`wsgo_processes_accepting`:                        2,
		`wsgo_requests_total{method="GET",status="404"}`:  10,
		`wsgo_requests_total{method="POST",status="200"}`: 3,
		`wsgo_request_duration_seconds_count`:             18,
	})

	// Requests no scrape has seen, then a reload: the old processes' last
	// counts come with their exit.
	post(4)
	mark := s.stderr.Len()
	s.Signal(t, syscall.SIGHUP)
	s.WaitStderrAfter(t, mark, "reload done")
	waitFor(t, waitTimeout, "the old worker processes to exit", func() bool { return len(s.Children(t)) == 2 })
	waitSamples(t, stats, map[string]float64{
		`wsgo_requests_total{method="POST",status="200"}`: 7,
		`wsgo_request_duration_seconds_count`:             22,
		`wsgo_worker_restarts_total{reason="reload"}`:     2,
		`wsgo_worker_restarts_total{reason="exit"}`:       1,
		`wsgo_processes_accepting`:                        2,
		`wsgo_workers`:                                    6,
	})
}

// TestMetricsBlockedRequests: a block and the requests it refuses are
// counted, and the refusals are not in wsgo_requests_total.
func TestMetricsBlockedRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t, "priorityapp", "--stats-socket", "127.0.0.1:0")
	stats := statsURL(t, s)
	send := func(path string) int {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("X-Forwarded-For", "203.0.113.90")
		return do(t, req).Status
	}
	if status := send("/block?s=1"); status != 200 {
		t.Fatalf("GET /block = %d", status)
	}
	wantSamples(t, scrape(t, stats), map[string]float64{`wsgo_blocked_clients`: 1})
	if status := send("/whoami"); status != 429 {
		t.Fatalf("GET /whoami while blocked = %d, want 429", status)
	}
	waitSamples(t, stats, map[string]float64{
		`wsgo_blocked_requests_total`:                    1,
		`wsgo_blocked_clients`:                           0,
		`wsgo_requests_total{method="GET",status="200"}`: 1,
	})
}

// TestHealthz: /healthz answers 200 while every worker process accepts,
// 503 while one is being replaced and once the server is stopping.
func TestHealthz(t *testing.T) {
	t.Parallel()
	slow := filepath.Join(t.TempDir(), "slow")
	s := startServerEnv(t, []string{"SLOWSTART_FILE=" + slow}, "slowstart", "--processes", "2",
		"--stats-socket", "127.0.0.1:0", "--shutdown-timeout", "10")
	health := statsURL(t, s) + "/healthz"
	r := get(t, health)
	if r.Status != 200 || r.String() != "ok: 2 of 2 worker processes accepting\n" {
		t.Fatalf("/healthz = %d %q", r.Status, r.Body)
	}

	// Replacements now take 2 s to import the app.
	writeFile(t, slow, "2")
	if err := syscall.Kill(s.Children(t)[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, "/healthz to say 503", func() bool { return get(t, health).Status == 503 })
	if r := get(t, health); r.Status == 503 && r.String() != "unavailable: 1 of 2 worker processes accepting\n" {
		t.Errorf("/healthz while a process restarts = %q", r.Body)
	}
	waitFor(t, readyTimeout, "/healthz to say 200 again", func() bool { return get(t, health).Status == 200 })

	// A request keeps the server busy after SIGTERM; meanwhile it is stopping.
	done := make(chan int, 1)
	go func() {
		status, _, _ := fetch(freshClient(waitTimeout), s.URL+"/sleep?s=3")
		done <- status
	}()
	waitFor(t, waitTimeout, "the request to run", func() bool {
		return scrape(t, statsURL(t, s))[`wsgo_workers_busy`] == 1
	})
	s.Signal(t, syscall.SIGTERM)
	waitFor(t, waitTimeout, "/healthz to say stopping", func() bool {
		r, err := freshClient(time.Second).Get(health)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		return r.StatusCode == 503 && string(b) == "stopping\n"
	})
	if status := <-done; status != 200 {
		t.Errorf("the request running at SIGTERM got %d", status)
	}
	if code := s.WaitExit(t); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

// TestStatsSocketTaken: a --stats-socket that cannot be opened stops the
// start, naming the flag.
func TestStatsSocketTaken(t *testing.T) {
	t.Parallel()
	s := startServer(t, "hello", "--stats-socket", "127.0.0.1:0")
	taken := strings.TrimPrefix(statsURL(t, s), "http://")
	res := runWsgo(t, "--module", "hello", "--chdir", testdataDir(t), "--http-socket", "127.0.0.1:0", "--stats-socket", taken)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "wsgo: --stats-socket: listen tcp "+taken) {
		t.Errorf("exit %d; stderr:\n%s", res.ExitCode, res.Stderr)
	}
}

// ---- start-up line ----

// TestReadinessLine: the line that says the server listens also says what
// it serves: the app, processes × workers, and the Python.
func TestReadinessLine(t *testing.T) {
	t.Parallel()
	s := startServer(t, "hello", "--processes", "2", "--workers", "3")
	re := regexp.MustCompile(`(?m)^wsgo: listening on http://127\.0\.0\.1:\d+ \(app hello, 2 processes × 3 workers, Python 3\.\d+\.\d+\S* at (/\S+)\)$`)
	m := re.FindStringSubmatch(s.Stderr())
	if m == nil {
		t.Fatalf("no start-up line matching %s; stderr:\n%s", re, tail(s.Stderr()))
	}
	if _, err := os.Stat(m[1]); err != nil {
		t.Errorf("the Python named is not there: %v", err)
	}
}

// ---- config file and environment ----

// TestConfigFileAndEnvironment: settings come from the flags, then WSGO_*
// variables, then the --config file.
func TestConfigFileAndEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "page.txt"), "static page\n")
	conf := filepath.Join(dir, "wsgo.toml")
	writeFile(t, conf, fmt.Sprintf(`# wsgo settings
module = "nosuchmodule"      # the flag wins
workers = 7                  # WSGO_WORKERS wins
processes = 2
static-map = ["/files=%s"]
log-format = "json"
`, dir))
	s := startServerEnv(t, []string{"WSGO_CONFIG=" + conf, "WSGO_WORKERS=3", "WSGO_LOG_FORMAT=combined"}, "hello")
	if !strings.Contains(s.Stderr(), "(app hello, 2 processes × 3 workers,") {
		t.Errorf("start-up line does not show the resolved settings:\n%s", tail(s.Stderr()))
	}
	r := get(t, s.URL+"/files/page.txt")
	if r.Status != 200 || r.String() != "static page\n" {
		t.Errorf("static file from the config file's static-map: %d %q", r.Status, r.Body)
	}
	s.WaitStdout(t, "/files/page.txt")
	if line := lineWith(s.Stdout(), "/files/page.txt"); !strings.HasPrefix(line, "127.0.0.1 - - [") {
		t.Errorf("WSGO_LOG_FORMAT did not win over the file: %q", line)
	}

	// Worker processes run with the settings resolved at start, not with
	// what the file says later: a broken file changes nothing.
	writeFile(t, conf, "this is not TOML\n")
	killed := s.Children(t)[0]
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, readyTimeout, "the killed worker process's replacement", func() bool {
		kids := s.Children(t)
		return len(kids) == 2 && kids[0] != killed && kids[1] != killed
	})
	healthy(t, s, "/files/page.txt")
	mark := s.stderr.Len()
	s.Signal(t, syscall.SIGHUP)
	s.WaitStderrAfter(t, mark, "reload done")
	healthy(t, s, "/files/page.txt")
}

// TestConfigErrors: a bad key or value, in the file or the environment,
// stops the start with a message naming it (and the file's line).
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		name, file string
		env        []string
		want       string
	}{
		{"unknown key", "workers = 2\nprocesess = 2\n", nil, `wsgo: FILE:2: unknown key "procesess" (the keys are the flags' names; see wsgo --help)`},
		{"bad value", "\nworkers = \"many\"\n", nil, `wsgo: FILE:2: workers: want an integer, not the string "many"`},
		{"out of range", "queue-size = 0\n", nil, `wsgo: FILE:1: queue-size must be at least 1, not 0`},
		{"environment", "", []string{"WSGO_MAX_AGE=soon"}, `wsgo: WSGO_MAX_AGE: invalid value "soon": parse error`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			conf := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".toml")
			writeFile(t, conf, tc.file)
			res := runWsgoEnv(t, tc.env, "--config", conf, "--module", "hello", "--chdir", testdataDir(t),
				"--http-socket", "127.0.0.1:0")
			want := strings.ReplaceAll(tc.want, "FILE", conf)
			if res.ExitCode != 2 || !strings.Contains(res.Stderr, want+"\n") {
				t.Errorf("exit %d, stderr:\n%s\nwant it to say: %s", res.ExitCode, res.Stderr, want)
			}
		})
	}
}
