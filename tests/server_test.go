// Package tests holds wsgo's integration tests: each test starts the real
// wsgo binary (WSGO_BIN, default ../bin/wsgo) on a Python app from
// ../testdata and talks to it over 127.0.0.1 like any HTTP client would.
package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"wsgo/internal/procstat"
)

const (
	// readyTimeout bounds how long a server may take to import its app.
	readyTimeout = 20 * time.Second
	// waitTimeout bounds every other wait on the server (output, exits).
	waitTimeout = 10 * time.Second
	// stopTimeout bounds the wait after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
)

func TestMain(m *testing.M) {
	// The tests mostly wait on server processes, so run more of them at
	// once than the default GOMAXPROCS (2 here), unless -parallel was given.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		_ = flag.Set("test.parallel", "4")
	}
	os.Exit(m.Run())
}

// wsgoBin returns the absolute path of the binary under test, failing the
// test when it is missing.
func wsgoBin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("WSGO_BIN")
	if bin == "" {
		bin = filepath.Join("..", "bin", "wsgo")
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		t.Fatalf("resolving WSGO_BIN %q: %v", bin, err)
	}
	st, err := os.Stat(abs)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("wsgo binary not found or not executable at %s (set WSGO_BIN or run `make build`): %v", abs, err)
	}
	return abs
}

// testdataDir is the absolute path of ../testdata, where the apps live.
func testdataDir(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// cleanEnv is the test's environment without variables that would change
// which Python packages the server sees, plus extra.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VIRTUAL_ENV=") || strings.HasPrefix(kv, "PYTHONPATH=") ||
			strings.HasPrefix(kv, "PYTHONHOME=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// stream collects one output stream of the server and lets tests wait for
// text to appear in it.
type stream struct {
	mu      sync.Mutex
	buf     []byte
	changed chan struct{} // closed and replaced on every write
}

func newStream() *stream { return &stream{changed: make(chan struct{})} }

func (s *stream) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.buf = append(s.buf, p...)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	return len(p), nil
}

func (s *stream) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.buf)
}

// Len reports how many bytes were written so far.
func (s *stream) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
}

// waitUntil waits until cond holds for the stream's contents (true), the
// timeout passes or done is closed (false, after a last look).
func (s *stream) waitUntil(cond func(string) bool, timeout time.Duration, done <-chan struct{}) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		text, changed := string(s.buf), s.changed
		s.mu.Unlock()
		if cond(text) {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return cond(s.String())
		case <-done:
			// The writer side may still be draining the pipe; give it
			// a moment (bounded) before the final look.
			select {
			case <-changed:
				continue
			case <-time.After(200 * time.Millisecond):
			}
			return cond(s.String())
		}
	}
}

// server is one running wsgo process.
type server struct {
	URL  string // http://127.0.0.1:PORT
	Addr string // 127.0.0.1:PORT
	Port string

	cmd     *exec.Cmd
	stdout  *stream
	stderr  *stream
	exited  chan struct{}
	waitErr error
	mu      sync.Mutex
	// exitExpected is set by WaitExit: the test ends the server itself.
	exitExpected bool
}

var listenRE = regexp.MustCompile(`wsgo: listening on (http://(127\.0\.0\.1:(\d+)))`)

// startServer runs wsgo on module (NAME or NAME:callable) from testdata,
// waits until it announces its port and stops it when the test ends.
func startServer(t testing.TB, module string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, nil, module, args...)
}

// startServerEnv is startServer with extra environment variables (KEY=VALUE).
func startServerEnv(t testing.TB, env []string, module string, args ...string) *server {
	t.Helper()
	bin := wsgoBin(t)
	full := append([]string{"--module", module, "--chdir", testdataDir(t),
		"--http-socket", "127.0.0.1:0"}, args...)
	s := &server{stdout: newStream(), stderr: newStream(), exited: make(chan struct{})}
	s.cmd = exec.Command(bin, full...)
	s.cmd.Env = cleanEnv(env...)
	s.cmd.Stdout = s.stdout
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	go func() {
		err := s.cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	if !s.stderr.waitUntil(listenRE.MatchString, readyTimeout, s.exited) {
		select {
		case <-s.exited:
			t.Fatalf("wsgo %s exited before listening (%v)\nstderr:\n%s", strings.Join(full, " "), s.exitErr(), tail(s.stderr.String()))
		default:
			t.Fatalf("wsgo %s did not print %q within %v\nstderr:\n%s", strings.Join(full, " "), "wsgo: listening on http://127.0.0.1:PORT", readyTimeout, tail(s.stderr.String()))
		}
	}
	m := listenRE.FindStringSubmatch(s.stderr.String())
	s.URL, s.Addr, s.Port = m[1], m[2], m[3]
	return s
}

func (s *server) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

// Stdout is everything the server printed on stdout so far (access log).
func (s *server) Stdout() string { return s.stdout.String() }

// Stderr is everything the server printed on stderr so far.
func (s *server) Stderr() string { return s.stderr.String() }

// PID is the server's process id.
func (s *server) PID() int { return s.cmd.Process.Pid }

// WaitStdout fails the test unless substr shows up on stdout in time.
func (s *server) WaitStdout(t testing.TB, substr string) {
	t.Helper()
	if !s.stdout.waitUntil(func(out string) bool { return strings.Contains(out, substr) }, waitTimeout, s.exited) {
		t.Fatalf("%q did not appear on the server's stdout within %v; stdout:\n%s", substr, waitTimeout, tail(s.Stdout()))
	}
}

// WaitStderr fails the test unless substr shows up on stderr in time.
func (s *server) WaitStderr(t testing.TB, substr string) {
	t.Helper()
	if !s.stderr.waitUntil(func(out string) bool { return strings.Contains(out, substr) }, waitTimeout, s.exited) {
		t.Fatalf("%q did not appear on the server's stderr within %v; stderr:\n%s", substr, waitTimeout, tail(s.Stderr()))
	}
}

// WaitStderrAfter fails the test unless substr shows up on stderr after
// its first offset bytes (an earlier s.stderr.Len()) in time.
func (s *server) WaitStderrAfter(t testing.TB, offset int, substr string) {
	t.Helper()
	if !s.stderr.waitUntil(func(out string) bool { return strings.Contains(out[offset:], substr) }, waitTimeout, s.exited) {
		t.Fatalf("%q did not appear on the server's stderr within %v; stderr gained:\n%s", substr, waitTimeout, tail(s.Stderr()[offset:]))
	}
}

// WaitStdoutMatches waits until re matches at least n times on stdout after
// its first offset bytes (an earlier s.stdout.Len()), and returns those
// matches' submatches; it fails the test if that does not happen in time.
func (s *server) WaitStdoutMatches(t testing.TB, offset int, re *regexp.Regexp, n int) [][]string {
	t.Helper()
	var found [][]string
	if !s.stdout.waitUntil(func(out string) bool {
		found = re.FindAllStringSubmatch(out[offset:], -1)
		return len(found) >= n
	}, waitTimeout, s.exited) {
		t.Fatalf("%d match(es) of %q did not appear on the server's stdout within %v; stdout gained:\n%s",
			n, re, waitTimeout, tail(s.Stdout()[offset:]))
	}
	return found
}

// Signal sends sig to the server (the supervisor).
func (s *server) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("sending %v to the server: %v", sig, err)
	}
}

// WaitExit waits (bounded) for a server the test asked to stop, and returns
// its exit status; the end of the test then does not count the exit as a
// failure.
func (s *server) WaitExit(t testing.TB) int {
	t.Helper()
	s.mu.Lock()
	s.exitExpected = true
	s.mu.Unlock()
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		t.Fatalf("server did not exit within %v; stderr:\n%s", stopTimeout, tail(s.Stderr()))
	}
	var exitErr *exec.ExitError
	switch err := s.exitErr(); {
	case err == nil:
		return 0
	case errors.As(err, &exitErr):
		return exitErr.ExitCode()
	default:
		t.Fatalf("waiting for the server: %v", err)
		return -1
	}
}

// Children lists the server's worker processes (the supervisor's children).
func (s *server) Children(t testing.TB) []int {
	t.Helper()
	kids, err := procstat.Children(s.PID())
	if err != nil {
		t.Fatalf("listing the server's worker processes: %v", err)
	}
	sort.Ints(kids)
	return kids
}

// waitFor polls cond until it holds, failing the test after timeout. It is
// for conditions that no output of the server announces.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Alive fails the test if the server process has exited.
func (s *server) Alive(t testing.TB) {
	t.Helper()
	select {
	case <-s.exited:
		t.Fatalf("server exited unexpectedly (%v); stderr:\n%s", s.exitErr(), tail(s.Stderr()))
	default:
	}
}

// stop sends SIGTERM, waits (bounded), then SIGKILLs. A server that died on
// its own during the test fails it.
func (s *server) stop(t testing.TB) {
	defer s.checkRaces(t)
	s.mu.Lock()
	expected := s.exitExpected
	s.mu.Unlock()
	select {
	case <-s.exited:
		if expected {
			return
		}
		t.Errorf("server had exited before the test ended (%v); stderr:\n%s", s.exitErr(), tail(s.Stderr()))
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(stopTimeout):
		t.Errorf("server did not exit within %v of SIGTERM; killing it", stopTimeout)
		_ = s.cmd.Process.Kill()
		select {
		case <-s.exited:
		case <-time.After(5 * time.Second):
		}
	}
	if t.Failed() {
		t.Logf("server stderr (tail):\n%s", tail(s.Stderr()))
	}
}

// checkRaces fails the test when the server (a race-detector build in
// make test) reported a data race: the detector only prints, and the exit
// status of a stopped server is not otherwise looked at.
func (s *server) checkRaces(t testing.TB) {
	if i := strings.Index(s.Stderr(), "WARNING: DATA RACE"); i >= 0 {
		t.Errorf("the server reported a data race:\n%s", s.Stderr()[i:])
	}
}

// tail shortens long output for failure messages.
func tail(s string) string {
	const max = 6000
	if len(s) > max {
		return "...\n" + s[len(s)-max:]
	}
	return s
}

// runResult is the outcome of a wsgo run that is expected to exit.
type runResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// runWsgo runs wsgo with args and waits (bounded) for it to exit. A run
// that does not exit in time is killed and fails the test.
func runWsgo(t testing.TB, args ...string) runResult {
	t.Helper()
	return runWsgoEnv(t, nil, args...)
}

// runWsgoEnv is runWsgo with extra environment variables (KEY=VALUE).
func runWsgoEnv(t testing.TB, env []string, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, wsgoBin(t), args...)
	cmd.Env = cleanEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("wsgo %s did not exit within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), readyTimeout, tail(stdout.String()), tail(stderr.String()))
	}
	res := runResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.ExitCode = exitErr.ExitCode()
	default:
		t.Fatalf("running wsgo %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// ---- HTTP helpers ----

// client is shared by the tests: bounded, keeps connections alive, does
// not follow redirects (tests that want them look at the 3xx themselves).
var client = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		MaxIdleConnsPerHost: 16,
		DisableCompression:  true,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// response is a fully read HTTP response.
type response struct {
	Status     int
	StatusLine string // e.g. "500 Oops"
	Header     http.Header
	Body       []byte
	TE         []string // Transfer-Encoding as sent
	Proto      string   // e.g. "HTTP/2.0"
}

func (r *response) String() string { return string(r.Body) }

// do sends req with the shared client and reads the whole response.
func do(t testing.TB, req *http.Request) *response {
	t.Helper()
	return doWith(t, client, req)
}

// doWith sends req with client c and reads the whole response.
func doWith(t testing.TB, c *http.Client, req *http.Request) *response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return &response{Status: resp.StatusCode, StatusLine: resp.Status, Header: resp.Header, Body: body,
		TE: resp.TransferEncoding, Proto: resp.Proto}
}

func get(t testing.TB, url string) *response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

func post(t testing.TB, url, contentType string, body []byte) *response {
	t.Helper()
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	return do(t, req)
}

// postChunked posts body with an unknown length, so the Go client sends it
// with Transfer-Encoding: chunked.
func postChunked(t testing.TB, url, contentType string, body []byte) *response {
	t.Helper()
	req, err := http.NewRequest("POST", url, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", contentType)
	return do(t, req)
}

// fetch is a GET with client c that reports a failure instead of failing
// the test, for loops that count failures or expect them.
func fetch(c *http.Client, url string) (status int, body string, err error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// freshClient opens a new connection for every request, so that each
// request's fate depends only on the worker process that accepted it.
func freshClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
}

// atoiOr parses a number the app answered, or gives -1.
func atoiOr(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// wantStatus fails the test unless r has the given status code.
func wantStatus(t testing.TB, r *response, code int) {
	t.Helper()
	if r.Status != code {
		t.Fatalf("status = %q, want %d; body: %.500q", r.StatusLine, code, r.Body)
	}
}

// healthy checks that the server still answers path with 200.
func healthy(t testing.TB, s *server, path string) {
	t.Helper()
	s.Alive(t)
	r := get(t, s.URL+path)
	if r.Status != 200 {
		t.Fatalf("server no longer healthy: GET %s = %q", path, r.StatusLine)
	}
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// pseudoRandom returns n deterministic, incompressible-looking bytes.
func pseudoRandom(n int, seed uint32) []byte {
	b := make([]byte, n)
	x := seed | 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// ---- raw socket helpers ----

// rawConn is a plain TCP connection for requests the Go client cannot or
// will not send, and for seeing exactly what the server sends back.
type rawConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, s *server) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

// send writes s, failing the test on error.
func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("raw write: %v", err)
	}
}

// readResponse parses the next response (for a request with method) and
// reads its body.
func (rc *rawConn) readResponse(method string) (*response, error) {
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	r := &response{Status: resp.StatusCode, StatusLine: resp.Status, Header: resp.Header, Body: body, TE: resp.TransferEncoding}
	return r, err
}

// mustResponse is readResponse that fails the test on error.
func (rc *rawConn) mustResponse(method string) *response {
	rc.t.Helper()
	r, err := rc.readResponse(method)
	if err != nil {
		rc.t.Fatalf("reading raw response: %v", err)
	}
	return r
}

// readAll reads until the server closes the connection (or the deadline),
// returning what arrived; a reset after some data is not an error here.
func (rc *rawConn) readAll() []byte {
	b, _ := io.ReadAll(rc.br)
	return b
}

// statusLine reads the first line of the server's answer (bounded), without
// waiting for the rest or for the connection to close.
func (rc *rawConn) statusLine() []byte {
	_ = rc.c.SetReadDeadline(time.Now().Add(waitTimeout))
	line, _ := rc.br.ReadString('\n')
	return []byte(line)
}

// rawHead sends "HEAD target" on a new connection, fails the test if
// anything follows the headers, and returns the parsed answer.
func rawHead(t testing.TB, s *server, target string) *response {
	t.Helper()
	raw := rawExchange(t, s, "HEAD "+target+" HTTP/1.1\r\nHost: "+s.Addr+"\r\nConnection: close\r\n\r\n")
	head, rest, found := strings.Cut(string(raw), "\r\n\r\n")
	if !found {
		t.Fatalf("HEAD %s: no end of headers in %.300q", target, raw)
	}
	if rest != "" {
		t.Errorf("HEAD %s sent a body: %.200q", target, rest)
	}
	return parseRaw(t, []byte(head+"\r\n\r\n"), "HEAD")
}

// rawExchange sends a complete request on a new connection and returns
// everything the server sends until it closes the connection.
func rawExchange(t testing.TB, s *server, req string) []byte {
	t.Helper()
	rc := dialRaw(t, s)
	rc.send(req)
	return rc.readAll()
}

// parseRaw parses raw bytes as one response to a request with method.
func parseRaw(t testing.TB, raw []byte, method string) *response {
	t.Helper()
	rc := &rawConn{t: t, br: bufio.NewReader(bytes.NewReader(raw))}
	r, err := rc.readResponse(method)
	if err != nil {
		t.Fatalf("parsing response: %v\nraw: %.1000q", err, raw)
	}
	return r
}

// statusOf returns the status code of the first response line in raw.
func statusOf(raw []byte) string {
	line, _, _ := strings.Cut(string(raw), "\r\n")
	if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/") {
		return f[1]
	}
	return fmt.Sprintf("<no status line in %.200q>", raw)
}

// load keeps goroutines requesting a URL, one request in flight each, until
// Stop (or the test's end, or a bound of twice waitTimeout). It counts the
// successes and keeps the failures, each goroutine's last answer and every
// distinct answer.
type load struct {
	ok   atomic.Int64
	mu   sync.Mutex
	errs []string
	last []string
	seen map[string]bool
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// startLoad starts n goroutines requesting url through c.
func startLoad(t testing.TB, c *http.Client, url string, n int) *load {
	l := &load{last: make([]string, n), seen: map[string]bool{}, quit: make(chan struct{})}
	for g := 0; g < n; g++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for deadline := time.Now().Add(2 * waitTimeout); time.Now().Before(deadline); {
				select {
				case <-l.quit:
					return
				default:
				}
				status, body, err := fetch(c, url)
				if err == nil && status != 200 {
					err = fmt.Errorf("status %d: %.200q", status, body)
				}
				l.mu.Lock()
				if err != nil {
					l.errs = append(l.errs, err.Error())
				} else {
					l.last[g] = body
					l.seen[body] = true
				}
				l.mu.Unlock()
				if err == nil {
					l.ok.Add(1)
				}
			}
		}()
	}
	t.Cleanup(l.Stop)
	return l
}

// OK is how many requests have succeeded so far.
func (l *load) OK() int64 { return l.ok.Load() }

// Stop ends the load and waits for its requests in flight.
func (l *load) Stop() { l.once.Do(func() { close(l.quit); l.wg.Wait() }) }

// Results stops the load and returns the failures, each goroutine's last
// answer and the set of answers.
func (l *load) Results() (failures, last []string, seen map[string]bool) {
	l.Stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs, l.last, l.seen
}
