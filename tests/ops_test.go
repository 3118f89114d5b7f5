package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGUSR1DumpsStacks: SIGUSR1 to the supervisor makes the worker
// process print, on stdout, each worker thread's state and Python stack:
// the busy one names its request and is inside the app's function, the
// other is idle.
func TestSIGUSR1DumpsStacks(t *testing.T) {
	t.Parallel()
	s := startServer(t, "opsapp", "--workers", "2")
	kids := s.Children(t)
	if len(kids) != 1 {
		t.Fatalf("worker processes = %v, want 1", kids)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		status, body, err := fetch(freshClient(waitTimeout), s.URL+"/block?token=usr1")
		done <- result{status, body, err}
	}()
	released := false
	release := func() {
		if !released {
			released = true
			_, _, _ = fetch(freshClient(waitTimeout), s.URL+"/release?token=usr1")
		}
	}
	defer release() // so that a failing test does not leave the request hanging
	s.WaitStderr(t, "opsapp: blocked usr1")

	// The whole dump: the header and both workers, each with its stack
	// (lines indented by two or more spaces).
	dumpRE := regexp.MustCompile(`(?m)^wsgo: process (\d+) \(pid (\d+)\): stacks of (\d+) workers\n` +
		`((?:--- worker .*\n(?:  .*\n)*){2})`)
	mark := s.stdout.Len()
	s.Signal(t, syscall.SIGUSR1)
	dump := s.WaitStdoutMatches(t, mark, dumpRE, 1)[0]
	if want := []string{"1", strconv.Itoa(kids[0]), "2"}; !slices.Equal(dump[1:4], want) {
		t.Errorf("dump header says process %s (pid %s), %s workers; want process 1 (pid %d), 2 workers",
			dump[1], dump[2], dump[3], kids[0])
	}

	workerRE := regexp.MustCompile(`(?m)^--- worker (\d+): (.*)\n((?:  .*\n)*)`)
	busyRE := regexp.MustCompile(`^request (\d+), GET /block\?token=usr1, running (\S+)$`)
	frameRE := regexp.MustCompile(`(?m)^  File ".*opsapp\.py", line \d+, in wait_for_release$`)
	var busy, idle []string
	for _, w := range workerRE.FindAllStringSubmatch(dump[4], -1) {
		switch state := w[2]; {
		case state == "idle":
			idle = append(idle, w[1])
		case busyRE.MatchString(state):
			busy = append(busy, w[1])
			m := busyRE.FindStringSubmatch(state)
			if d, err := time.ParseDuration(m[2]); err != nil || d <= 0 || d > waitTimeout {
				t.Errorf("busy worker %s: running %q, want a positive duration under %v", w[1], m[2], waitTimeout)
			}
			if !frameRE.MatchString(w[3]) {
				t.Errorf("busy worker %s's stack lacks a frame of opsapp.py in wait_for_release:\n%s", w[1], w[3])
			}
			if !strings.Contains(w[3], "in application\n") {
				t.Errorf("busy worker %s's stack lacks the app's application frame:\n%s", w[1], w[3])
			}
		default:
			t.Errorf("worker %s: unexpected state %q", w[1], state)
		}
	}
	if len(busy) != 1 || len(idle) != 1 || busy[0] == idle[0] {
		t.Errorf("busy workers %v, idle workers %v; want one of each, distinct; dump:\n%s", busy, idle, dump[0])
	}

	release()
	select {
	case r := <-done:
		if r.err != nil || r.status != 200 || r.body != "released usr1" {
			t.Errorf("the blocked request got %d %q, %v; want 200 \"released usr1\"", r.status, r.body, r.err)
		}
	case <-time.After(waitTimeout):
		t.Errorf("the blocked request got no answer within %v of its release", waitTimeout)
	}
}

// reportRE matches one worker process's SIGUSR2 line.
var reportRE = regexp.MustCompile(`(?m)^wsgo: process (\d+) \(pid (\d+)\): requests=(\d+) errors=(\d+) ` +
	`timeouts=(\d+) stuck=(\d+) queue=(\d+) workers=(\d+) go_heap_kib=(\d+) python_blocks=(\d+) ` +
	`gc_counts=\((\d+), (\d+), (\d+)\)$`)

// TestSIGUSR2ReportsCounts: SIGUSR2 to the supervisor makes every worker
// process print one line of counts; across the processes they add up to
// the requests sent, the one that raised counted as an error.
func TestSIGUSR2ReportsCounts(t *testing.T) {
	t.Parallel()
	for _, processes := range []int{1, 2} {
		t.Run(strconv.Itoa(processes), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "opsapp", "--processes", strconv.Itoa(processes), "--workers", "2")
			kids := s.Children(t)
			if len(kids) != processes {
				t.Fatalf("worker processes = %v, want %d", kids, processes)
			}
			// Fresh connections, so that with two processes both may get some.
			c := freshClient(waitTimeout)
			const ok = 5
			for i := 0; i < ok; i++ {
				if status, body, err := fetch(c, s.URL+"/"); err != nil || status != 200 {
					t.Fatalf("GET / = %d %q, %v", status, body, err)
				}
			}
			if status, body, err := fetch(c, s.URL+"/raise"); err != nil || status != 500 {
				t.Fatalf("GET /raise = %d %q, %v; want 500", status, body, err)
			}

			mark := s.stdout.Len()
			s.Signal(t, syscall.SIGUSR2)
			found := s.WaitStdoutMatches(t, mark, reportRE, processes)
			var slots []string
			var pids []int
			requests, errs := 0, 0
			for _, m := range found {
				slots = append(slots, m[1])
				pids = append(pids, atoiOr(m[2]))
				requests += atoiOr(m[3])
				errs += atoiOr(m[4])
				if m[5] != "0" || m[6] != "0" || m[7] != "0" || m[8] != "2" {
					t.Errorf("timeouts=%s stuck=%s queue=%s workers=%s, want 0, 0, 0 and 2: %s", m[5], m[6], m[7], m[8], m[0])
				}
				if atoiOr(m[9]) <= 0 || atoiOr(m[10]) <= 0 {
					t.Errorf("go_heap_kib=%s python_blocks=%s, want both positive: %s", m[9], m[10], m[0])
				}
			}
			slices.Sort(slots)
			slices.Sort(pids)
			var wantSlots []string
			for i := 1; i <= processes; i++ {
				wantSlots = append(wantSlots, strconv.Itoa(i))
			}
			if !slices.Equal(slots, wantSlots) || !slices.Equal(pids, kids) {
				t.Errorf("reports came from processes %v with pids %v, want processes %v with pids %v", slots, pids, wantSlots, kids)
			}
			if requests != ok+1 || errs != 1 {
				t.Errorf("reports add up to requests=%d errors=%d, want requests=%d errors=1: %q",
					requests, errs, ok+1, found)
			}
		})
	}
}

// TestSignalRightAfterListening: once wsgo says it is listening, every
// worker process answers SIGUSR2, even one sent at once. A worker process
// that installed its signal handler only after reporting ready would drop
// such a signal; this is timing-dependent, so it may pass by luck then, but
// never fails when the handler is in place in time.
func TestSignalRightAfterListening(t *testing.T) {
	t.Parallel()
	for i := 0; i < 2; i++ {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "opsapp", "--processes", "2", "--workers", "1")
			s.Signal(t, syscall.SIGUSR2)
			s.WaitStdoutMatches(t, 0, reportRE, 2)
		})
	}
}

// TestMaxRequestsRecycles: after --max-requests requests (plus up to 10%),
// the worker process asks for a replacement, which takes over without a
// failed request.
func TestMaxRequestsRecycles(t *testing.T) {
	t.Parallel()
	s := startServer(t, "opsapp", "--max-requests", "20", "--workers", "2")
	old := s.Children(t)
	if len(old) != 1 {
		t.Fatalf("worker processes = %v, want 1", old)
	}
	mark := s.stderr.Len()
	c := freshClient(waitTimeout)
	const sent = 40
	for i := 0; i < sent; i++ {
		if status, body, err := fetch(c, s.URL+"/pid"); err != nil || status != 200 {
			t.Fatalf("request %d: GET /pid = %d %q, %v", i+1, status, body, err)
		}
	}
	// The limit is checked once a second; no request is sent meanwhile,
	// so the count it reports is at most what was sent.
	s.WaitStderrAfter(t, mark, "recycling a worker process")
	l := startLoad(t, freshClient(waitTimeout), s.URL+"/pid", 1)
	recycleRE := regexp.MustCompile(`msg="recycling a worker process" process=1 pid=(\d+) reason="max-requests \((\d+) served\)"`)
	if m := recycleRE.FindStringSubmatch(s.Stderr()[mark:]); m == nil {
		t.Errorf("the recycling line does not match %q; stderr gained:\n%s", recycleRE, tail(s.Stderr()[mark:]))
	} else if pid, served := atoiOr(m[1]), atoiOr(m[2]); pid != old[0] || served < 20 || served > sent {
		t.Errorf("recycled pid %d after %d requests; want pid %d after 20 to %d", pid, served, old[0], sent)
	}
	s.WaitStderrAfter(t, mark, "reload done")

	waitFor(t, waitTimeout, "the old worker process to be gone", func() bool {
		now := s.Children(t)
		return len(now) >= 1 && !slices.Contains(now, old[0])
	})
	failures, _, pids := l.Results()
	t.Logf("%d requests during the recycle, answered by pids %v", l.OK(), pids)
	if len(failures) > 0 {
		t.Errorf("%d requests failed during the recycle, want none: %q", len(failures), failures[:min(len(failures), 10)])
	}
	status, body, err := fetch(c, s.URL+"/pid")
	if err != nil || status != 200 || atoiOr(body) <= 0 || atoiOr(body) == old[0] {
		t.Errorf("after the recycle: GET /pid = %d %q, %v; want 200 from a process other than %d", status, body, err, old[0])
	}
}

// TestReloadOnRSSRecycles: a worker process above --reload-on-rss asks for
// a replacement (here at once, the limit being tiny, and again and again),
// and the server keeps answering meanwhile.
func TestReloadOnRSSRecycles(t *testing.T) {
	t.Parallel()
	s := startServer(t, "opsapp", "--reload-on-rss", "1", "--workers", "2")
	old := s.Children(t)
	if len(old) != 1 {
		t.Fatalf("worker processes = %v, want 1", old)
	}
	s.WaitStderr(t, "recycling a worker process")
	recycleRE := regexp.MustCompile(`msg="recycling a worker process" process=1 pid=(\d+) reason="reload-on-rss \((\d+) MiB resident\)"`)
	if m := recycleRE.FindStringSubmatch(s.Stderr()); m == nil {
		t.Errorf("the recycling line does not match %q; stderr:\n%s", recycleRE, tail(s.Stderr()))
	} else if pid, rss := atoiOr(m[1]), atoiOr(m[2]); pid != old[0] || rss < 1 {
		t.Errorf("recycled pid %d at %d MiB; want pid %d above 1 MiB", pid, rss, old[0])
	}
	s.WaitStderr(t, "reload done")
	c := freshClient(waitTimeout)
	for i := 0; i < 5; i++ {
		if status, body, err := fetch(c, s.URL+"/pid"); err != nil || status != 200 {
			t.Fatalf("GET /pid while recycling = %d %q, %v; want 200", status, body, err)
		}
	}
	waitFor(t, waitTimeout, "the first worker process to be gone", func() bool {
		return !slices.Contains(s.Children(t), old[0])
	})
	healthy(t, s, "/")
}

// reloadModule is the app the --reload test edits: it answers its marker
// and its pid.
const reloadModule = `import os

MARKER = %q


def application(environ, start_response):
    body = ("%%s %%d" %% (MARKER, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
`

// TestReloadOnFileChange: with --reload, editing the app's module under
// --chdir reloads the workers, which then serve the new code.
func TestReloadOnFileChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "reloadmod.py")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(reloadModule, "first-marker")), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "reloadmod", "--chdir", dir, "--reload", "--workers", "2")
	old := s.Children(t)
	if len(old) != 1 {
		t.Fatalf("worker processes = %v, want 1", old)
	}
	c := freshClient(waitTimeout)
	if status, body, err := fetch(c, s.URL+"/"); err != nil || status != 200 || body != fmt.Sprintf("first-marker %d", old[0]) {
		t.Fatalf("GET / = %d %q, %v; want 200 \"first-marker %d\"", status, body, err, old[0])
	}

	mark := s.stderr.Len()
	if err := os.WriteFile(file, []byte(fmt.Sprintf(reloadModule, "second-marker, edited")), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Second)
	if err := os.Chtimes(file, later, later); err != nil {
		t.Fatal(err)
	}
	s.WaitStderrAfter(t, mark, "reloading: starting a new generation of workers")
	if !strings.Contains(s.Stderr()[mark:], `reason="a watched file changed"`) {
		t.Errorf("the reload does not give the file change as its reason; stderr gained:\n%s", tail(s.Stderr()[mark:]))
	}
	s.WaitStderrAfter(t, mark, "reload done")
	// The old process was told to stop at "reload done"; once it is gone,
	// only the new one can answer.
	waitFor(t, waitTimeout, "the old worker process to exit", func() bool {
		return !slices.Contains(s.Children(t), old[0])
	})
	now := s.Children(t)
	want := fmt.Sprintf("second-marker, edited %d", now[0])
	if status, body, err := fetch(c, s.URL+"/"); err != nil || status != 200 || len(now) != 1 || body != want {
		t.Fatalf("after the reload: GET / = %d %q, %v (worker processes %v); want 200 %q", status, body, err, now, want)
	}
}
