package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// wrkResult is what one wrk run reports.
type wrkResult struct {
	ReqPerSec float64
	P99       time.Duration
	Requests  int64
	Non2xx    int64
	// Socket errors by kind: connect, read, write, timeout.
	Connect, Read, Write, Timeout int64
	Output                        string
	// Probe is how a request on a new connection fared during the run.
	Probe probeResult
}

// errors sums the failed requests of all kinds.
func (r wrkResult) errors() int64 {
	return r.Non2xx + r.Connect + r.Read + r.Write + r.Timeout
}

// errorText describes the failures briefly, or "0".
func (r wrkResult) errorText() string {
	var parts []string
	for _, e := range []struct {
		n    int64
		name string
	}{{r.Non2xx, "non-2xx"}, {r.Connect, "connect"}, {r.Read, "read"}, {r.Write, "write"}, {r.Timeout, "timeout"}} {
		if e.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", e.n, e.name))
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, ", ")
}

// wrkRun describes one wrk invocation.
type wrkRun struct {
	URL         string
	Connections int
	Duration    time.Duration
	Script      string   // path of a Lua script, or ""
	ScriptArgs  []string // passed after "--"
	// StopMarker, when set, is a line the script prints on stdout when it
	// has stopped its thread; wrk is then sent SIGINT to end the run early.
	StopMarker string
}

// argv returns the command line: wrk pinned to the load CPU, one thread.
func (c *config) wrkArgv(r wrkRun) []string {
	secs := int((r.Duration + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	argv := []string{"taskset", "-c", c.wrkCPU, "wrk", "-t1", "-c" + strconv.Itoa(r.Connections),
		"-d" + strconv.Itoa(secs) + "s", "--timeout", strconv.Itoa(int(c.wrkTimeout/time.Second)) + "s",
		"--latency"}
	if r.Script != "" {
		argv = append(argv, "-s", r.Script)
	}
	argv = append(argv, r.URL)
	if len(r.ScriptArgs) > 0 {
		argv = append(append(argv, "--"), r.ScriptArgs...)
	}
	return argv
}

// runWrk runs wrk and parses its report. The run is bounded by its
// duration plus a minute.
func (c *config) runWrk(r wrkRun) (wrkResult, error) {
	argv := c.wrkArgv(r)
	ctx, cancel := context.WithTimeout(context.Background(), r.Duration+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.WaitDelay = 5 * time.Second
	out := &markerWriter{marker: r.StopMarker}
	if r.StopMarker != "" {
		out.onMarker = func() { cmd.Process.Signal(syscall.SIGINT) }
	}
	var stderr bytes.Buffer
	cmd.Stdout = out
	cmd.Stderr = &stderr
	err := cmd.Run()
	text := out.String()
	if err != nil {
		return wrkResult{Output: text}, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	res, err := parseWrk(text)
	if err != nil {
		return res, fmt.Errorf("%v in wrk output:\n%s%s", err, text, stderr.String())
	}
	return res, nil
}

// markerWriter collects wrk's stdout and calls onMarker once when a line
// containing marker has arrived.
type markerWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	marker   string
	onMarker func()
	fired    bool
}

func (w *markerWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if w.onMarker != nil && !w.fired && bytes.Contains(w.buf.Bytes(), []byte(w.marker+"\n")) {
		w.fired = true
		w.onMarker()
	}
	return len(p), nil
}

func (w *markerWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

var (
	reReqSec   = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	reP99      = regexp.MustCompile(`(?m)^\s*99%\s+([0-9.]+)(us|ms|s|m|h)\s*$`)
	reRequests = regexp.MustCompile(`(?m)^\s*(\d+) requests in `)
	reSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	reNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// parseWrk extracts the figures from the output of `wrk --latency`.
func parseWrk(out string) (wrkResult, error) {
	r := wrkResult{Output: out}
	m := reReqSec.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec line")
	}
	r.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
	m = reP99.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no 99%% latency line (was --latency given?)")
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond,
		"s": time.Second, "m": time.Minute, "h": time.Hour}[m[2]]
	r.P99 = time.Duration(v * float64(unit))
	if m = reRequests.FindStringSubmatch(out); m != nil {
		r.Requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m = reSocket.FindStringSubmatch(out); m != nil {
		r.Connect, _ = strconv.ParseInt(m[1], 10, 64)
		r.Read, _ = strconv.ParseInt(m[2], 10, 64)
		r.Write, _ = strconv.ParseInt(m[3], 10, 64)
		r.Timeout, _ = strconv.ParseInt(m[4], 10, 64)
	}
	if m = reNon2xx.FindStringSubmatch(out); m != nil {
		r.Non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

// scriptPath returns the path of a wrk script in the bench directory.
func (c *config) scriptPath(name string) string {
	if name == "" {
		return ""
	}
	return filepath.Join(c.benchDir, name)
}
