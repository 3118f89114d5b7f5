package tests

import (
	"errors"
	"net"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestProcesses: --processes N runs N worker processes under the
// supervisor, and the app sees wsgi.multiprocess accordingly.
func TestProcesses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		processes    int
		multiprocess string
	}{
		{1, "False"},
		{2, "True"},
	} {
		t.Run(strconv.Itoa(tc.processes), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "lifeapp", "--processes", strconv.Itoa(tc.processes), "--workers", "2")
			if kids := s.Children(t); len(kids) != tc.processes {
				t.Errorf("worker processes = %v, want %d", kids, tc.processes)
			}
			r := get(t, s.URL+"/multiprocess")
			wantStatus(t, r, 200)
			if r.String() != tc.multiprocess {
				t.Errorf("wsgi.multiprocess = %s, want %s", r.Body, tc.multiprocess)
			}
		})
	}
}

// TestKilledWorkerIsReplaced: kill -9 of one of two worker processes under
// load costs at most the requests it was running; the supervisor starts a
// replacement at once, and it serves.
func TestKilledWorkerIsReplaced(t *testing.T) {
	t.Parallel()
	s := startServer(t, "lifeapp", "--processes", "2", "--workers", "2")
	before := s.Children(t)
	if len(before) != 2 {
		t.Fatalf("worker processes = %v, want 2", before)
	}
	victim := before[0]

	// The load: each goroutine has at most one request in flight, so the
	// kill can fail at most one request per goroutine.
	const goroutines = 4
	c := freshClient(waitTimeout)
	l := startLoad(t, c, s.URL+"/pid", goroutines)
	waitFor(t, waitTimeout, "the load to get going", func() bool { return l.OK() >= 20 })

	mark := s.stderr.Len()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	s.WaitStderrAfter(t, mark, "worker process exited; replacing it")
	var after []int
	waitFor(t, time.Until(killed.Add(time.Second)), "two worker processes again within 1 s, one of them new", func() bool {
		after = s.Children(t)
		return len(after) == 2 && !slices.Contains(after, victim)
	})
	replacement := after[0]
	if replacement == before[1] {
		replacement = after[1]
	}

	// The replacement answers once it has imported the app (nothing is
	// logged then: poll, fresh connections land on either process).
	waitFor(t, waitTimeout, "the replacement to answer", func() bool {
		_, body, err := fetch(c, s.URL+"/pid")
		return err == nil && body == strconv.Itoa(replacement)
	})
	okBefore := l.OK()
	waitFor(t, waitTimeout, "more requests to succeed", func() bool { return l.OK() >= okBefore+20 })
	errs, _, _ := l.Results()
	t.Logf("%d requests succeeded, %d failed: %v", l.OK(), len(errs), errs)
	if len(errs) > goroutines {
		t.Errorf("%d requests failed, want at most %d (those running on the killed process): %v", len(errs), goroutines, errs)
	}
	if got := s.Children(t); !slices.Equal(got, after) {
		t.Errorf("worker processes changed again after the replacement: %v, then %v", after, got)
	}
}

// TestAppCrashReplacesWorker: an app that takes its worker process down
// fails only its own request (the client gets a connection error promptly,
// not a hang), and a replacement process serves the next one.
func TestAppCrashReplacesWorker(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path string
		status     string // in the supervisor's "replacing it" line
	}{
		{"segfault", "/segfault", ""},
		{"os._exit", "/exit", "exit status 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "lifeapp", "--workers", "2")
			old := s.Children(t)
			mark := s.stderr.Len()

			status, body, err := fetch(freshClient(waitTimeout), s.URL+tc.path)
			var netErr net.Error
			switch {
			case err == nil:
				t.Errorf("GET %s answered %d %q, want a connection error", tc.path, status, body)
			case errors.As(err, &netErr) && netErr.Timeout():
				t.Errorf("GET %s hung until the client gave up: %v", tc.path, err)
			}

			s.WaitStderrAfter(t, mark, "worker process exited; replacing it")
			if tc.status != "" {
				s.WaitStderrAfter(t, mark, tc.status)
			}
			r := get(t, s.URL+"/pid")
			wantStatus(t, r, 200)
			if r.String() == strconv.Itoa(old[0]) {
				t.Errorf("the crashed process %d still answers", old[0])
			}
			if kids := s.Children(t); len(kids) != 1 || kids[0] != atoiOr(r.String()) {
				t.Errorf("worker processes = %v, want just the one that answered (%s)", kids, r.Body)
			}
		})
	}
}
