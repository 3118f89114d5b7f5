package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The jobs of testdata/cronapp.py (and cronjobs.py) print these on stdout.
var (
	tickRE = regexp.MustCompile(`cronapp: tick n=(\d+) t=([\d.]+) pid=(\d+)`)
	slowRE = regexp.MustCompile(`cronapp: slow (start|end) n=(\d+) t=([\d.]+)`)
)

// startCronApp serves cronapp with the jobs named (comma-separated).
func startCronApp(t *testing.T, jobs string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, []string{"CRONAPP_JOBS=" + jobs}, "cronapp", args...)
}

func seconds(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a time: %q", s)
	}
	return f
}

// TestCronTimerPeriod: a @wsgo.timer(0.5) job, defined in a module that the
// app imports, runs every half second from the server's start; a
// @wsgo.cron job is scheduled for the next minute its fields match.
func TestCronTimerPeriod(t *testing.T) {
	t.Parallel()
	s := startCronApp(t, "tick,weekly", "--workers", "2")
	ticks := s.WaitStdoutMatches(t, 0, tickRE, 7)[:7]
	var at []float64
	for i, m := range ticks {
		if m[1] != strconv.Itoa(i+1) {
			t.Fatalf("tick %d is numbered %s: %q", i+1, m[1], m[0])
		}
		at = append(at, seconds(t, m[2]))
	}
	// Runs are on a fixed grid, so the mean interval is the period even
	// when single runs start late.
	if mean := (at[6] - at[0]) / 6; mean < 0.45 || mean > 0.55 {
		t.Errorf("mean interval between ticks = %.3fs, want 0.5s (ticks at %v)", mean, at)
	}
	for i := 1; i < len(at); i++ {
		if d := at[i] - at[i-1]; d < 0.2 || d > 0.8 {
			t.Errorf("tick %d came %.3fs after tick %d, want about 0.5s", i+1, d, i)
		}
	}
	stderr := s.Stderr()
	if !strings.Contains(stderr, `msg="cron job scheduled" process=1 job=cronjobs.tick schedule="every 500ms"`) {
		t.Errorf("stderr does not log the timer job as scheduled:\n%s", tail(stderr))
	}
	// The weekly job (Sundays at 04:30) is only scheduled, never waited for.
	m := regexp.MustCompile(`job=cronapp.weekly schedule="cron 30 4 \* \* 7" next="(\d{4}-\d\d-\d\d \d\d:\d\d)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("stderr does not log the cron job as scheduled:\n%s", tail(stderr))
	}
	next, err := time.Parse("2006-01-02 15:04", m[1])
	if err != nil || next.Weekday() != time.Sunday || next.Hour() != 4 || next.Minute() != 30 {
		t.Errorf("the weekly job's next run is %s (%v), want a Sunday at 04:30", m[1], next.Weekday())
	}
	if strings.Contains(s.Stdout(), "weekly ran") {
		t.Errorf("the weekly job ran")
	}
}

// TestCronOverlapSkipped: a timer(1) job whose runs take 2.5 s runs one at
// a time: the runs that fall due meanwhile are skipped and logged. It runs
// on a thread of its own: with --workers 1, the one worker answers while
// the job sleeps.
func TestCronOverlapSkipped(t *testing.T) {
	t.Parallel()
	s := startCronApp(t, "slow", "--workers", "1")
	s.WaitStdout(t, "cronapp: slow start n=1")
	r := get(t, s.URL+"/slow-running")
	wantStatus(t, r, 200)
	if r.String() != "yes" {
		t.Errorf("/slow-running = %q while the job sleeps, want yes", r.Body)
	}
	s.WaitStderr(t, `msg="cron job still running; skipping this run" process=1 job=cronapp.slow`)

	marks := s.WaitStdoutMatches(t, 0, slowRE, 4)[:4]
	want := []string{"start 1", "end 1", "start 2", "end 2"}
	for i, m := range marks {
		if got := m[1] + " " + m[2]; got != want[i] {
			t.Fatalf("job markers = %q, want the sequence %q", marks, want)
		}
	}
	if endFirst, startSecond := seconds(t, marks[1][3]), seconds(t, marks[2][3]); startSecond < endFirst {
		t.Errorf("the second run started at %.3f, before the first ended at %.3f", startSecond, endFirst)
	}
}

// TestCronException: a job that raises gets its traceback on stderr and
// a log line naming it, and runs again at its next period.
func TestCronException(t *testing.T) {
	t.Parallel()
	s := startCronApp(t, "boom", "--workers", "1")
	s.WaitStderr(t, "RuntimeError: cronapp-boom-1")
	s.WaitStderr(t, "RuntimeError: cronapp-boom-2")
	stderr := s.Stderr()
	for _, want := range []string{
		"Traceback (most recent call last)",
		`raise RuntimeError("cronapp-boom-%d" % _booms)`,
		`msg="cron job raised an exception (traceback above)" process=1 job=cronapp.boom`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, tail(stderr))
		}
	}
	healthy(t, s, "/")
}

// TestCronFirstProcessOnly: with --processes 2, jobs run in process 1
// only.
func TestCronFirstProcessOnly(t *testing.T) {
	t.Parallel()
	s := startCronApp(t, "tick", "--processes", "2", "--workers", "1")
	ticks := s.WaitStdoutMatches(t, 0, tickRE, 6)
	pids := map[string]bool{}
	for _, m := range ticks {
		pids[m[3]] = true
	}
	kids := s.Children(t)
	if len(pids) != 1 {
		t.Fatalf("jobs ran in processes %v, want one (worker processes: %v)", pids, kids)
	}
	for pid := range pids {
		if len(kids) != 2 || (strconv.Itoa(kids[0]) != pid && strconv.Itoa(kids[1]) != pid) {
			t.Errorf("jobs ran in pid %s, not one of the worker processes %v", pid, kids)
		}
	}
	scheduled := regexp.MustCompile(`msg="cron job scheduled" process=(\d+)`).FindAllStringSubmatch(s.Stderr(), -1)
	if len(scheduled) != 1 || scheduled[0][1] != "1" {
		t.Errorf("jobs were scheduled in processes %v, want process 1 only", scheduled)
	}
}

// TestCronTimeout: a job that runs past --cron-timeout gets
// RequestTimeoutException, like a request, and runs again afterwards.
func TestCronTimeout(t *testing.T) {
	t.Parallel()
	s := startCronApp(t, "spin", "--workers", "1", "--cron-timeout", "1")
	s.WaitStdout(t, "cronapp: spin start")
	started := time.Now()
	s.WaitStderr(t, `msg="cron job timed out; raising RequestTimeoutException in it" process=1 job=cronapp.spin`)
	if took := time.Since(started); took < 800*time.Millisecond {
		t.Errorf("the job was interrupted %v after it started, before the 1 s timeout", took)
	}
	s.WaitStderr(t, "wsgo.RequestTimeoutException")
	s.WaitStderr(t, `msg="cron job interrupted by RequestTimeoutException (traceback above)" process=1 job=cronapp.spin`)
	s.WaitStdout(t, "cronapp: spin again")
	healthy(t, s, "/")
}

// TestCronShutdown: at shutdown no run starts; one in progress may finish
// within --shutdown-timeout, and one that will not is interrupted and, if
// it still does not return, abandoned, so that the process still exits in
// time and runs the app's atexit handlers.
func TestCronShutdown(t *testing.T) {
	t.Parallel()
	t.Run("waits for a run", func(t *testing.T) {
		t.Parallel()
		s := startCronApp(t, "finisher", "--workers", "1", "--shutdown-timeout", "10")
		s.WaitStdout(t, "cronapp: finisher start")
		s.Signal(t, syscall.SIGTERM)
		if status := s.WaitExit(t); status != 0 {
			t.Errorf("exit status %d, want 0; stderr:\n%s", status, tail(s.Stderr()))
		}
		out := s.Stdout()
		if !strings.Contains(out, "cronapp: finisher end") || !strings.Contains(out, "cronapp: atexit ran") {
			t.Errorf("the run in progress did not finish before the app's exit; stdout:\n%s", tail(out))
		}
		if strings.Contains(s.Stderr(), "shutdown deadline") {
			t.Errorf("the run was interrupted; stderr:\n%s", tail(s.Stderr()))
		}
	})
	t.Run("abandons a stuck run", func(t *testing.T) {
		t.Parallel()
		// The job sleeps in C, where RequestTimeoutException cannot land.
		s := startCronApp(t, "sleeper", "--workers", "1", "--shutdown-timeout", "2")
		s.WaitStdout(t, "cronapp: sleeper start")
		s.Signal(t, syscall.SIGTERM)
		if status := s.WaitExit(t); status != 0 {
			t.Errorf("exit status %d, want 0; stderr:\n%s", status, tail(s.Stderr()))
		}
		stderr := s.Stderr()
		for _, want := range []string{
			`msg="cron job still running at the shutdown deadline; raising RequestTimeoutException in it" process=1 job=cronapp.sleeper`,
			`msg="cron job did not stop after RequestTimeoutException; shutting down without it" process=1 job=cronapp.sleeper`,
		} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr lacks %q:\n%s", want, tail(stderr))
			}
		}
		if strings.Contains(stderr, "did not stop in time; killing it") {
			t.Errorf("the supervisor had to kill the worker process:\n%s", tail(stderr))
		}
		if !strings.Contains(s.Stdout(), "cronapp: atexit ran") {
			t.Errorf("the app's atexit handlers did not run; stdout:\n%s", tail(s.Stdout()))
		}
	})
}

// stubPython runs code under the plain interpreter with the stand-in wsgo
// package (python/) and testdata on its path, and returns its output.
func stubPython(t *testing.T, code string) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		t.Skipf("no %s: %v", python, err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-B", "-c", code)
	cmd.Env = cleanEnv("PYTHONPATH=" + filepath.Join(root, "python") + string(os.PathListSeparator) + testdataDir(t))
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -c %q: %v\n%s", python, code, err, out)
	}
	return string(out)
}

// TestCronStubPackage: outside the server, `import wsgo` finds the
// stand-in package under plain python3. Its decorators take and refuse
// the same arguments as the server's (and return the function), its
// constants and exception are the same, and notify_parked says it only
// works in the server. Inside the server the built-in module is used, and
// a decorator used after start-up only warns.
func TestCronStubPackage(t *testing.T) {
	t.Parallel()
	out := stubPython(t, `
import wsgo, croncheck
print(wsgo.__file__)
print(croncheck.report(wsgo), end="")
try:
    wsgo.notify_parked("a,b", wsgo.RETRY, "x")
except RuntimeError as e:
    print("notify_parked: RuntimeError:", e)
`)
	file, rest, _ := strings.Cut(out, "\n")
	if want := filepath.Join("python", "wsgo", "__init__.py"); !strings.HasSuffix(file, want) {
		t.Errorf("plain python imported wsgo from %s, want .../%s", file, want)
	}
	stubReport, notify, _ := strings.Cut(rest, "notify_parked: ")
	if !strings.HasPrefix(notify, "RuntimeError: wsgo.notify_parked only works inside the wsgo server") {
		t.Errorf("notify_parked outside the server: %q", notify)
	}

	s := startCronApp(t, "", "--workers", "1")
	r := get(t, s.URL+"/module")
	wantStatus(t, r, 200)
	if r.String() != "built-in" {
		t.Errorf("the app imported wsgo from %q, want the server's built-in module", r.Body)
	}
	r = get(t, s.URL+"/checks")
	wantStatus(t, r, 200)
	if got := r.String(); got != stubReport {
		t.Errorf("the built-in module and the stand-in package differ.\nbuilt-in:\n%s\nstand-in:\n%s", got, stubReport)
	}
	for _, want := range []string{"ValueError: wsgo.cron: min must be -1 (any) or from 0 to 59, not 60",
		"timer(0.25,) -> returns the function", "constants: DISCONNECT=0 RETRY=1 HTTP_204=2 HTTP_504=3",
		"wsgo.RequestTimeoutException < builtins.BaseException"} {
		if !strings.Contains(stubReport, want) {
			t.Errorf("the report lacks %q:\n%s", want, stubReport)
		}
	}

	wantStatus(t, get(t, s.URL+"/late"), 200)
	s.WaitStderr(t, "RuntimeWarning: cronapp.application.<locals>.too_late: @wsgo.timer has no effect once the app is loaded")
	if strings.Contains(s.Stderr(), "cron job scheduled") {
		t.Errorf("a job registered after start-up was scheduled:\n%s", tail(s.Stderr()))
	}
}

// TestCronStubPackageInstalls: `pip install ./python` works with no
// package index at all, and a server run in that virtualenv still gives
// the app its built-in module.
func TestCronStubPackageInstalls(t *testing.T) {
	t.Parallel()
	venv := filepath.Join(t.TempDir(), "venv")
	if out, err := exec.Command("/usr/bin/python3", "-m", "venv", venv).CombinedOutput(); err != nil {
		t.Skipf("cannot make a virtualenv with pip (/usr/bin/python3 -m venv): %v\n%s", err, out)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	pip := exec.Command(filepath.Join(venv, "bin", "pip"), "install", "--no-index", "--disable-pip-version-check",
		filepath.Join(root, "python"))
	pip.Env = cleanEnv("PYTHONDONTWRITEBYTECODE=1", "PIP_FIND_LINKS=")
	if out, err := pip.CombinedOutput(); err != nil {
		t.Fatalf("pip install --no-index ./python: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(venv, "bin", "python"), "-B", "-c",
		"import wsgo; print(wsgo.__file__); wsgo.timer(1)(print)").CombinedOutput()
	if err != nil {
		t.Fatalf("importing the installed package: %v\n%s", err, out)
	}
	if want := filepath.Join(venv, "lib"); !strings.HasPrefix(string(out), want) {
		t.Errorf("the virtualenv's python imported wsgo from %s, want its site-packages", out)
	}

	s := startCronApp(t, "", "--workers", "1", "--virtualenv", venv)
	r := get(t, s.URL+"/module")
	wantStatus(t, r, 200)
	if r.String() != "built-in" {
		t.Errorf("in the virtualenv, the app imported wsgo from %q, want the server's built-in module", r.Body)
	}
}

// TestCronBadArguments: a decorator with a bad argument fails the import,
// so the server reports it and does not start.
func TestCronBadArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "badcron.py"), `import wsgo


@wsgo.cron(0, 0, 31, 2, -1)
def never():
    pass


def application(environ, start_response):
    pass
`)
	res := runWsgo(t, "--module", "badcron", "--chdir", dir, "--http-socket", "127.0.0.1:0")
	if res.ExitCode == 0 {
		t.Fatalf("wsgo started with an impossible cron spec; stderr:\n%s", tail(res.Stderr))
	}
	if !strings.Contains(res.Stderr, "ValueError: wsgo.cron: day 31 never comes in month 2") {
		t.Errorf("stderr does not say why:\n%s", tail(res.Stderr))
	}
}
