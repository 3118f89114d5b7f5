package tests

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRequestTimeout: a request that runs past --request-timeout is
// interrupted and its client gets 502, even when the app catches every
// Exception; the server then answers as before.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, path string }{
		{"spin", "/spin"},
		// RequestTimeoutException is a BaseException: `except Exception`
		// does not swallow it.
		{"except Exception", "/spin-catch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "timeoutapp", "--workers", "2", "--request-timeout", "1")
			start := time.Now()
			r := get(t, s.URL+tc.path)
			wantStatus(t, r, 502)
			if took := time.Since(start); took < time.Second {
				t.Errorf("502 after %v, before the 1 s timeout", took)
			}
			s.WaitStderr(t, "request timed out")
			healthy(t, s, "/")
		})
	}
}

// TestQueuedRequestTimeout: with the only worker busy, a request that has
// waited in the queue for the whole timeout gets 504 without running,
// while the one that ran too long gets 502.
func TestQueuedRequestTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, "timeoutapp", "--workers", "1", "--request-timeout", "1")
	// /spin-cleanup spins, then, once interrupted, holds the worker 0.5 s
	// more: the queued request has then certainly waited the full second
	// (with a bare spin it may start a moment before its own deadline).
	first := make(chan string, 1)
	go func() {
		status, _, err := fetch(freshClient(waitTimeout), s.URL+"/spin-cleanup")
		first <- fmt.Sprintf("%d, %v", status, err)
	}()
	s.WaitStderr(t, "timeoutapp: spinning")

	r := get(t, s.URL+"/")
	wantStatus(t, r, 504)
	if got := <-first; got != "502, <nil>" {
		t.Errorf("the request that ran too long got %s; want 502", got)
	}
	healthy(t, s, "/")
}

// TestTimeoutReleasesLoggingLock: requests interrupted while logging (the
// exception lands in a slow __repr__, or right as logging takes its
// handler's lock) all get answers, and logging still works afterwards:
// no logging lock was left held.
func TestTimeoutReleasesLoggingLock(t *testing.T) {
	t.Parallel()
	s := startServer(t, "timeoutapp", "--workers", "8", "--request-timeout", "1")
	const requests = 5
	c := freshClient(15 * time.Second)
	var wg sync.WaitGroup
	results := make([]string, requests)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, _, err := fetch(c, s.URL+"/log-slow-repr")
			if err != nil {
				results[i] = err.Error()
			} else if status != 502 {
				results[i] = fmt.Sprintf("status %d", status)
			}
		}()
	}
	wg.Wait()
	for i, res := range results {
		if res != "" {
			t.Errorf("logging request %d: %s, want 502", i, res)
		}
	}

	// The handler's lock is free: a request that logs through it answers
	// at once.
	status, body, err := fetch(freshClient(5*time.Second), s.URL+"/log")
	if err != nil || status != 200 {
		t.Fatalf("a request that logs after the timeouts: %d %q, %v; want 200 (a logging lock left held?)", status, body, err)
	}
	s.WaitStderr(t, "timeoutapp: plain log line")
}

// TestStuckWorkersReplaceProcess: workers blocked in C past the timeout
// (where the exception cannot land) are reported stuck; when all are, the
// process exits with status 3, the supervisor replaces it, and the server
// answers again.
func TestStuckWorkersReplaceProcess(t *testing.T) {
	t.Parallel()
	s := startServer(t, "timeoutapp", "--workers", "2", "--request-timeout", "1")
	old := s.Children(t)

	// Both workers sleep in time.sleep(1000). Their clients lose their
	// connections when the process exits; they only must not hang.
	c := freshClient(15 * time.Second)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = fetch(c, s.URL+"/sleep")
		}()
	}

	s.WaitStderr(t, "worker is stuck")
	s.WaitStderr(t, "worker process exited; replacing it")
	if !strings.Contains(s.Stderr(), "exit status 3") {
		t.Errorf("the stuck process did not exit with status 3; stderr:\n%s", tail(s.Stderr()))
	}
	healthy(t, s, "/")
	if kids := s.Children(t); len(kids) != 1 || kids[0] == old[0] {
		t.Errorf("worker processes = %v, want one replacing %v", kids, old)
	}

	wg.Wait()
	for i, err := range errs {
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			t.Errorf("sleeping request %d hung until its client gave up: %v", i, err)
		}
	}
}
