package main

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The HTTP/2 measurement ("-only h2"): wsgo on hello with --h2c and HTTPS
// (a --tls-self-signed certificate), driven by h2load (Debian's
// nghttp2-client) pinned to the load CPU, over HTTP/1.1 and HTTP/2, in
// cleartext and over TLS, so that the protocols compare with one client.
// wrk speaks HTTP/1.1 only; its hello figure is shown beside them.

// h2Run is one h2load configuration.
type h2Run struct {
	Label string
	TLS   bool
	H1    bool // --h1: HTTP/1.1 instead of HTTP/2
	// Clients connections, each with Streams requests in flight.
	Clients, Streams int
}

var h2Runs = []h2Run{
	{Label: "HTTP/1.1, cleartext", H1: true, Clients: 50, Streams: 1},
	{Label: "HTTP/1.1 over TLS", TLS: true, H1: true, Clients: 50, Streams: 1},
	{Label: "h2c (cleartext, prior knowledge)", Clients: 50, Streams: 1},
	{Label: "h2c (cleartext, prior knowledge)", Clients: 5, Streams: 10},
	{Label: "h2 over TLS (ALPN)", TLS: true, Clients: 50, Streams: 1},
	{Label: "h2 over TLS (ALPN)", TLS: true, Clients: 5, Streams: 10},
}

// h2Result is the outcome of one h2Run (the median of the rounds).
type h2Result struct {
	Run       h2Run
	ReqPerSec float64
	Mean      time.Duration // h2load's mean time per request
	Failed    int64         // failed, errored and timed-out requests, and non-2xx
	Err       error
}

// h2loadArgv is h2load's command line for run against the server's ports.
func (c *config) h2loadArgv(run h2Run, port, tlsPort int) []string {
	url := "http://" + addr(port) + "/"
	if run.TLS {
		url = "https://" + addr(tlsPort) + "/"
	}
	secs := int((c.duration + time.Second - 1) / time.Second)
	argv := []string{"taskset", "-c", c.wrkCPU, "h2load", "-t1", "-c" + strconv.Itoa(run.Clients),
		"-m" + strconv.Itoa(run.Streams), "-D", strconv.Itoa(max(secs, 1))}
	if c.warmup > 0 {
		argv = append(argv, "--warm-up-time", strconv.Itoa(max(int(c.warmup/time.Second), 1)))
	}
	if run.H1 {
		argv = append(argv, "--h1")
	}
	return append(argv, url)
}

// measureH2 starts wsgo once on hello with both sockets and takes every
// h2Run c.repeat times, in rounds; each result is the median by req/s.
func (c *config) measureH2() ([]h2Result, error) {
	s, _ := findServer("wsgo")
	w, _ := findWorkload("hello")
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	plain := s.Command
	s.Command = func(c *config, w workload, port int) ([]string, string) {
		argv, dir := plain(c, w, port)
		return append(argv, "--h2c", "--https-socket", addr(tlsPort), "--tls-self-signed"), dir
	}
	fmt.Fprintf(os.Stderr, "h2: wsgo on hello with h2load, %d configurations × %d\n", len(h2Runs), c.repeat)
	p, err := startServer(c, s, w)
	if err != nil {
		return nil, err
	}
	defer p.stop(c.stopWait)
	if err := p.waitReady(c.startWait, "wsgo: listening on https://"); err != nil {
		return nil, err
	}
	if err := checkResponse("http://"+addr(p.port)+"/", w); err != nil {
		return nil, fmt.Errorf("check: %v", err)
	}
	rounds := make([][]h2Result, len(h2Runs))
	for round := 0; round < c.repeat; round++ {
		for i, run := range h2Runs {
			r := c.runH2load(run, p.port, tlsPort)
			if r.Err != nil {
				fmt.Fprintf(os.Stderr, "h2: %-34s -c%d -m%-3d FAILED: %v\n", run.Label, run.Clients, run.Streams, r.Err)
			} else {
				fmt.Fprintf(os.Stderr, "h2: %-34s -c%d -m%-3d %10.0f req/s  mean %-9s  failed %d\n",
					run.Label, run.Clients, run.Streams, r.ReqPerSec, fmtDur(r.Mean), r.Failed)
			}
			rounds[i] = append(rounds[i], r)
		}
	}
	out := make([]h2Result, len(h2Runs))
	for i, rs := range rounds {
		out[i] = lowerMedian(rs, func(a, b h2Result) int { return cmp.Compare(a.ReqPerSec, b.ReqPerSec) })
		for _, r := range rs {
			if r.Err != nil {
				out[i] = r
			}
		}
	}
	return out, nil
}

var (
	reH2Finished = regexp.MustCompile(`(?m)^finished in [0-9.]+\w+, ([0-9.]+) req/s`)
	reH2Requests = regexp.MustCompile(`(?m)^requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	reH2Status   = regexp.MustCompile(`(?m)^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	reH2Time     = regexp.MustCompile(`(?m)^time for request:\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s)\s`)
)

// runH2load runs h2load once and parses its report.
func (c *config) runH2load(run h2Run, port, tlsPort int) h2Result {
	res := h2Result{Run: run}
	argv := c.h2loadArgv(run, port, tlsPort)
	ctx, cancel := context.WithTimeout(context.Background(), c.duration+c.warmup+time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		res.Err = fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, lastLines(out.String(), 3))
		return res
	}
	text := out.String()
	m := reH2Finished.FindStringSubmatch(text)
	if m == nil {
		res.Err = fmt.Errorf("no \"finished in\" line in h2load's output:\n%s", text)
		return res
	}
	res.ReqPerSec, _ = strconv.ParseFloat(m[1], 64)
	if m = reH2Requests.FindStringSubmatch(text); m != nil {
		for _, n := range m[1:] {
			v, _ := strconv.ParseInt(n, 10, 64)
			res.Failed += v
		}
	}
	if m = reH2Status.FindStringSubmatch(text); m != nil {
		for _, n := range m[2:] {
			v, _ := strconv.ParseInt(n, 10, 64)
			res.Failed += v
		}
	}
	if m = reH2Time.FindStringSubmatch(text); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[2]]
		res.Mean = time.Duration(v * float64(unit))
	}
	return res
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], " / ")
}

// renderH2 writes the HTTP/2 section.
func (c *config) renderH2(b *strings.Builder, rep *report) {
	if rep.H2 == nil && rep.H2Err == nil {
		return
	}
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("\n## HTTP/2 (wsgo --workers 16, hello, h2load)\n\n")
	p("One wsgo serves hello on a cleartext socket with `--h2c` and an HTTPS one with `--tls-self-signed` (TLS 1.3, ECDSA P-256). %s, pinned to CPU %s, drives it for %s after a %s warm-up, each configuration %s; -c is connections, -m requests in flight on each. h2load gives no percentiles: \"mean\" is its mean time per request. \"÷ HTTP/1.1\" compares with h2load's own cleartext HTTP/1.1 run.\n\n",
		firstLine(commandOutput("h2load", "--version")), c.wrkCPU, c.duration, c.warmup, timesText(c.repeat))
	if rep.H2Err != nil {
		p("Failed: %s\n", firstLine(rep.H2Err.Error()))
		return
	}
	var base float64
	if len(rep.H2) > 0 && rep.H2[0].Err == nil {
		base = rep.H2[0].ReqPerSec
	}
	p("| protocol | h2load | req/s | mean | failed | ÷ HTTP/1.1 |\n|---|---|--:|--:|--:|--:|\n")
	for _, r := range rep.H2 {
		flags := fmt.Sprintf("-c%d -m%d", r.Run.Clients, r.Run.Streams)
		if r.Run.H1 {
			flags += " --h1"
		}
		if r.Err != nil {
			p("| %s | `%s` | failed | | %s | |\n", r.Run.Label, flags, firstLine(r.Err.Error()))
			continue
		}
		ratio := "—"
		if base > 0 {
			ratio = fmt.Sprintf("%.2f", r.ReqPerSec/base)
		}
		p("| %s | `%s` | %.0f | %s | %d | %s |\n", r.Run.Label, flags, r.ReqPerSec, fmtDur(r.Mean), r.Failed, ratio)
	}
	for _, r := range rep.Results["hello"] {
		if r.Server.Name == "wsgo" && r.Err == nil {
			p("\nwrk's HTTP/1.1 figure for the same server on hello (above): %.0f req/s, p99 %s.\n", r.Wrk.ReqPerSec, fmtDur(r.Wrk.P99))
		}
	}
}

func timesText(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times in rounds (the median by req/s is shown)", n)
}
