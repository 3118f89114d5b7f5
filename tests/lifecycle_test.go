package tests

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadUnderLoad: SIGHUP replaces every worker process without a
// single failed request, even while clients keep their connections alive.
func TestReloadUnderLoad(t *testing.T) {
	t.Parallel()
	s := startServer(t, "lifeapp", "--processes", "2", "--workers", "4")
	before := s.Children(t)

	tr := &http.Transport{MaxIdleConnsPerHost: 8}
	defer tr.CloseIdleConnections()
	c := &http.Client{Timeout: 20 * time.Second, Transport: tr}
	l := startLoad(t, c, s.URL+"/pid", 8)
	waitFor(t, waitTimeout, "the load to get going", func() bool { return l.OK() >= 50 })

	for i := 0; i < 2; i++ {
		mark := s.stderr.Len()
		s.Signal(t, syscall.SIGHUP)
		s.WaitStderrAfter(t, mark, "reloading: starting a new generation of workers")
		s.WaitStderrAfter(t, mark, "reload done")
	}
	okBefore := l.OK()
	waitFor(t, waitTimeout, "more requests to succeed", func() bool { return l.OK() >= okBefore+50 })
	l.Stop()
	// Once the load stops, the old processes finish and go.
	var after []int
	waitFor(t, waitTimeout, "the old worker processes to exit", func() bool {
		after = s.Children(t)
		return len(after) == 2 && !slices.Contains(after, before[0]) && !slices.Contains(after, before[1])
	})

	errs, lastPID, _ := l.Results()
	t.Logf("%d requests succeeded across two reloads", l.OK())
	if len(errs) > 0 {
		t.Errorf("%d requests failed during the reloads, want none: %q", len(errs), errs[:min(len(errs), 10)])
	}
	for g, pid := range lastPID {
		if !slices.Contains(after, atoiOr(pid)) {
			t.Errorf("goroutine %d's last request was answered by pid %s, not by a current worker %v", g, pid, after)
		}
	}
}

// TestReloadFailureKeepsOldWorkers: when the app no longer imports, SIGHUP
// reports the failure and the running workers go on serving; once the app
// is fixed, SIGHUP reloads.
func TestReloadFailureKeepsOldWorkers(t *testing.T) {
	t.Parallel()
	flag := filepath.Join(t.TempDir(), "fail-import")
	s := startServerEnv(t, []string{"LIFEAPP_FAIL_FLAG=" + flag}, "lifeapp", "--processes", "2", "--workers", "2")
	before := s.Children(t)

	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mark := s.stderr.Len()
	s.Signal(t, syscall.SIGHUP)
	s.WaitStderrAfter(t, mark, "reload failed")
	if !strings.Contains(s.Stderr()[mark:], "lifeapp refuses to import") {
		t.Errorf("stderr does not say why the import failed; it gained:\n%s", tail(s.Stderr()[mark:]))
	}
	waitFor(t, waitTimeout, "the failed new worker processes to be gone", func() bool {
		return slices.Equal(s.Children(t), before)
	})
	c := freshClient(waitTimeout)
	for i := 0; i < 10; i++ {
		status, body, err := fetch(c, s.URL+"/pid")
		if err != nil || status != 200 || !slices.Contains(before, atoiOr(body)) {
			t.Fatalf("after the failed reload: GET /pid = %d %q, %v; want 200 from one of %v", status, body, err, before)
		}
	}

	if err := os.Remove(flag); err != nil {
		t.Fatal(err)
	}
	mark = s.stderr.Len()
	s.Signal(t, syscall.SIGHUP)
	s.WaitStderrAfter(t, mark, "reload done")
	waitFor(t, waitTimeout, "the old worker processes to exit", func() bool {
		kids := s.Children(t)
		return len(kids) == 2 && !slices.Contains(kids, before[0]) && !slices.Contains(kids, before[1])
	})
	healthy(t, s, "/")
}

// TestGracefulShutdown: SIGTERM lets a running request finish with its
// whole body, runs the app's atexit handlers in every worker process, and
// the server exits 0 leaving no process behind.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	s := startServer(t, "lifeapp", "--processes", "2", "--workers", "2")
	kids := s.Children(t)

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	mark := s.stderr.Len()
	go func() {
		status, body, err := fetch(freshClient(waitTimeout), s.URL+"/slow")
		done <- result{status, body, err}
	}()
	s.WaitStderrAfter(t, mark, "lifeapp: slow request running")
	s.Signal(t, syscall.SIGTERM)

	select {
	case r := <-done:
		if r.err != nil || r.status != 200 {
			t.Errorf("the request running at SIGTERM got %d, %v; want 200", r.status, r.err)
		} else if r.body != strings.Repeat("x", 100_000) {
			t.Errorf("the request running at SIGTERM got %d bytes, want its 100,000", len(r.body))
		}
	case <-time.After(waitTimeout):
		t.Errorf("the request running at SIGTERM got no answer within %v", waitTimeout)
	}

	if code := s.WaitExit(t); code != 0 {
		t.Errorf("exit status after SIGTERM = %d, want 0; stderr:\n%s", code, tail(s.Stderr()))
	}
	for _, pid := range kids {
		if want := "lifeapp: atexit ran in pid " + strconv.Itoa(pid); !strings.Contains(s.Stderr(), want) {
			t.Errorf("stderr lacks %q: worker %d did not run its atexit handlers; stderr:\n%s", want, pid, tail(s.Stderr()))
		}
		if err := syscall.Kill(pid, 0); err != syscall.ESRCH {
			t.Errorf("worker process %d outlived the server (kill 0: %v)", pid, err)
		}
	}
}
