package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"wsgo/internal/procstat"
)

// memPoint is wsgo's memory at one point of the memory measurement.
type memPoint struct {
	Label    string
	Requests int64 // hello requests completed so far (by wrk's count)
	Mem      procstat.Memory
}

// stopMarker is the line bench/stopafter.lua prints when it has reached its
// request count.
const stopMarker = "wsgo-bench: limit reached"

// measureMemory starts wsgo (--workers 16) on the hello app and reads its
// VmRSS when idle after start, then after each cumulative count of
// c.memRequests hello requests. wrk has no request-count option, so
// stopafter.lua counts responses and stops wrk once a step's count is
// reached; each step is bounded by its own generous -d.
func (c *config) measureMemory() ([]memPoint, error) {
	s, _ := findServer("wsgo")
	w, _ := findWorkload("hello")
	fmt.Fprintf(os.Stderr, "memory: wsgo on hello, RSS after %v requests\n", c.memRequests)
	p, err := startServer(c, s, w)
	if err != nil {
		return nil, err
	}
	defer p.stop(c.stopWait)
	if err := p.waitReady(c.startWait, s.ReadyLine); err != nil {
		return nil, err
	}
	url := "http://" + addr(p.port) + "/"
	if err := checkResponse(url, w); err != nil {
		return nil, fmt.Errorf("check: %v", err)
	}
	pid := p.cmd.Process.Pid
	settle := func(label string, done int64) (memPoint, error) {
		time.Sleep(time.Second)
		m, err := readMem(pid)
		if err == nil {
			fmt.Fprintf(os.Stderr, "memory: %-34s VmRSS %s  VmHWM %s\n", label, fmtKiB(m.RSS), fmtKiB(m.HWM))
		}
		return memPoint{Label: label, Requests: done, Mem: m}, err
	}
	pt, err := settle("idle after start", 1)
	if err != nil {
		return nil, err
	}
	points := []memPoint{pt}
	var done int64 = 1 // the check request
	for _, target := range c.memRequests {
		step := target - done
		// Bound: enough for 1,000 requests/s, and at least a minute.
		bound := time.Duration(step/1000+60) * time.Second
		res, err := c.runWrk(wrkRun{URL: url, Connections: w.Connections, Duration: bound,
			Script: c.scriptPath("stopafter.lua"), ScriptArgs: []string{strconv.FormatInt(step, 10)},
			StopMarker: stopMarker})
		if err != nil {
			return points, err
		}
		done += res.Requests
		if res.errors() > 0 {
			return points, fmt.Errorf("errors while driving %d requests: %s", step, res.errorText())
		}
		if res.Requests < step {
			return points, fmt.Errorf("only %d of %d requests within %s", res.Requests, step, bound)
		}
		pt, err := settle(fmt.Sprintf("idle after %s requests", fmtCount(target)), done)
		if err != nil {
			return points, err
		}
		points = append(points, pt)
	}
	return points, nil
}
