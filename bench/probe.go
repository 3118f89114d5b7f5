package main

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// probeResult is how one extra request, made on a fresh connection halfway
// through a measured run, fared.
//
// wrk only reports on the requests that complete. A server that keeps each
// of its threads on one keep-alive connection leaves the rest of wrk's
// connections un-accepted, and wrk 4.1 counts them neither as requests nor
// as timeouts; the probe shows that a new client waits until the load stops.
type probeResult struct {
	Latency time.Duration
	// Late is set when the answer came only after wrk had stopped.
	Late bool
	// TimedOut is set when no answer came at all within the probe's bound.
	TimedOut bool
}

// String formats the probe for the tables: its latency, with † when it was
// answered only after the load stopped.
func (p probeResult) String() string {
	switch {
	case p.TimedOut:
		return "> " + fmtDur(p.Latency) + " †"
	case p.Late:
		return fmtDur(p.Latency) + " †"
	default:
		return fmtDur(p.Latency)
	}
}

// measure runs wrk once while probing the server: halfway through, one
// request on a new connection, checked like the first one. The probe may
// outlast wrk by up to half the run; a wrong answer fails the run.
func (c *config) measure(run wrkRun, url string, w workload) (wrkResult, error) {
	type answer struct {
		start, end time.Time
		err        error
	}
	probed := make(chan answer, 1)
	go func() {
		time.Sleep(run.Duration / 2)
		start := time.Now()
		err := checkResponseTimeout(url, w, run.Duration)
		probed <- answer{start, time.Now(), err}
	}()
	res, err := c.runWrk(run)
	stopped := time.Now()
	a := <-probed
	res.Probe = probeResult{
		Latency: a.end.Sub(a.start),
		// wrk is reaped a moment after it closes its connections.
		Late: a.end.After(stopped.Add(-200 * time.Millisecond)),
	}
	var ne net.Error
	if errors.As(a.err, &ne) && ne.Timeout() {
		res.Probe.TimedOut, res.Probe.Late = true, true
	} else if a.err != nil && err == nil {
		err = fmt.Errorf("probe request during the run: %v", a.err)
	}
	return res, err
}
