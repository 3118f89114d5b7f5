// Package supervisor is the process the user starts. It owns the listening
// sockets, starts the worker processes (this same binary, run again),
// replaces any that exits, reloads them all on SIGHUP without dropping a
// connection, and stops them on SIGTERM or SIGINT.
//
// It never starts Python, so nothing an app does can take it down, and it
// knows nothing of HTTP: a worker tells it only "ready" and "recycle me"
// over a pipe. Each worker slot has its own SO_REUSEPORT socket on the same
// address, so the kernel spreads connections across the slots; the
// supervisor keeps every socket open, so a connection queued on one while
// its worker restarts waits for the replacement instead of being reset.
package supervisor

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config says what to supervise.
type Config struct {
	Processes int
	// Addr and TLSAddr are the HOST:PORT of HTTP and of HTTPS ("" for
	// none); port 0 picks one for every slot.
	Addr    string
	TLSAddr string
	Args    []string // the worker's command line, without the program
	// Env is the worker's environment (nil: this process's), to which
	// the supervisor adds its own WSGO_WORKER.
	Env []string
	// Monitor, when set, is told of each worker's life, and each worker
	// gets a stats channel (see Event.Stats).
	Monitor Monitor
	// ShutdownTimeout is how long workers may take to finish their
	// requests after SIGTERM before they are killed.
	ShutdownTimeout time.Duration
	// ReadyTimeout bounds how long a new worker may take to import the app
	// and start accepting.
	ReadyTimeout time.Duration
	// Watch, when set, is called every second; a true result reloads the
	// workers as SIGHUP does (for --reload).
	Watch func() bool
	Log   *slog.Logger
	// Ready is called once, when the first workers all accept, with the
	// addresses of HTTP and HTTPS (nil for none).
	Ready func(addr, tlsAddr net.Addr)
}

// Restart back-off: a worker that ran at least stableUptime is replaced at
// once; one that keeps dying waits twice as long each time, up to
// maxBackoff, so that an app that crashes on start does not spin the CPU.
const (
	stableUptime = 10 * time.Second
	firstBackoff = 250 * time.Millisecond
	maxBackoff   = 10 * time.Second
)

// worker is one worker process.
type worker struct {
	slot, gen int
	proc      *os.Process
	started   time.Time
	ready     bool
	stopping  bool // sent SIGTERM by us: its exit is expected
}

// event is what the goroutines watching workers report to the main loop.
type event struct {
	w      *worker
	kind   string // msgReady, msgRecycle, or "exit"
	detail string
	state  *os.ProcessState // for "exit"
	err    error            // for "exit": Wait failed
}

// slot is one socket and the worker serving it.
type slot struct {
	id        int
	socket    int // the listening socket's descriptor (-1: none); see listenReusePort
	tlsSocket int // the HTTPS one, likewise
	current   *worker
	next      *worker // a replacement starting up, not yet accepting
	failures  int
	restartAt time.Time // when a dead worker is due to be replaced
	recycle   string    // why its worker asked to be replaced, while a reload was under way
}

type supervisor struct {
	cfg      Config
	exe      string
	slots    []*slot
	gen      int
	reload   *reload // the reload in progress, if any
	draining map[*worker]bool
	events   chan event
	started  bool // the first generation has all become ready
	addr     net.Addr
	tlsAddr  net.Addr
}

// reload is a set of replacement workers that take over together: the old
// ones are stopped only once every new one accepts, and if any new one
// fails, all of them are stopped and the old ones keep serving.
type reload struct {
	reason  string
	workers map[*worker]bool
	waiting int
	started time.Time
}

// Run supervises until SIGTERM or SIGINT, and returns the exit status.
func Run(cfg Config) int {
	exe, err := os.Executable()
	if err != nil {
		cfg.Log.Error("cannot find this program to start workers", "err", err)
		return 1
	}
	s := &supervisor{cfg: cfg, exe: exe, draining: map[*worker]bool{}, events: make(chan event, 64)}
	if err := s.listen(); err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
		return 1
	}
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	for _, sl := range s.slots {
		if sl.current, err = s.start(sl, ""); err != nil {
			cfg.Log.Error("cannot start a worker process", "err", err)
			return 1
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	restart := time.NewTimer(time.Hour)
	defer restart.Stop()
	for {
		select {
		case sig := <-signals:
			switch sig {
			case syscall.SIGHUP:
				s.startReload("SIGHUP")
			case syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH:
				s.signalAll(sig)
			default:
				cfg.Log.Info("shutting down", "signal", sig.String())
				return s.shutdown(0)
			}
		case ev := <-s.events:
			if status, done := s.handle(ev); done {
				return s.shutdown(status)
			}
		case <-tick.C:
			if cfg.Watch != nil && s.started && cfg.Watch() {
				s.startReload("a watched file changed")
			}
			s.checkReloadTimeout()
		case <-restart.C:
		}
		s.restartDue()
		restart.Reset(s.untilNextRestart())
	}
}

// listen opens one SO_REUSEPORT socket per slot on the same address, for
// HTTP and for HTTPS.
func (s *supervisor) listen() error {
	for i := 0; i < s.cfg.Processes; i++ {
		s.slots = append(s.slots, &slot{id: i + firstSlotID, socket: -1, tlsSocket: -1})
	}
	for _, l := range []struct {
		flag     string
		addr     string
		resolved *net.Addr
		socket   func(*slot) *int
	}{
		{"--http-socket", s.cfg.Addr, &s.addr, func(sl *slot) *int { return &sl.socket }},
		{"--https-socket", s.cfg.TLSAddr, &s.tlsAddr, func(sl *slot) *int { return &sl.tlsSocket }},
	} {
		addr := l.addr
		if addr == "" {
			continue
		}
		for i, sl := range s.slots {
			f, a, err := listenReusePort(addr)
			if err != nil {
				return fmt.Errorf("%s: %w", l.flag, err)
			}
			if i == 0 {
				*l.resolved, addr = a, a.String() // port 0 resolved: the others share it
			}
			*l.socket(sl) = f
		}
	}
	return nil
}

// listenReusePort opens a listening socket with SO_REUSEPORT and returns
// a duplicate of its descriptor, for workers to inherit. It is kept as a
// bare descriptor, never an *os.File: os.File.Fd (which os/exec calls on
// what it passes to a child) switches the socket to blocking mode, and
// that mode is shared by every process holding the socket, so a running
// worker's accept would then block in the kernel.
func listenReusePort(addr string) (int, net.Addr, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return -1, nil, err
	}
	defer ln.Close()
	raw, err := ln.(*net.TCPListener).SyscallConn()
	if err != nil {
		return -1, nil, err
	}
	dup := -1
	if cerr := raw.Control(func(fd uintptr) { dup, err = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return -1, nil, cerr
	}
	return dup, ln.Addr(), err
}

// start runs a worker process for sl, with the slot's socket as its
// descriptor 3, the write end of a control pipe as 4 and the slot's HTTPS
// socket as 5 (a socket the slot lacks is a closed descriptor), and, with
// a Monitor, the worker's end of its stats channel after those. reason is
// why it replaces another (see Event.Reason).
func (s *supervisor) start(sl *slot, reason string) (*worker, error) {
	s.gen = max(s.gen, 1)
	r, wpipe, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	w := &worker{slot: sl.id, gen: s.gen, started: time.Now()}
	files := []uintptr{0, 1, 2, uintptr(sl.socket), wpipe.Fd(), uintptr(sl.tlsSocket)}
	var stats net.Conn
	statsFD := 0 // none
	if s.cfg.Monitor != nil {
		var theirs int
		if stats, theirs, err = statsChannel(); err != nil {
			wpipe.Close()
			r.Close()
			return nil, err
		}
		defer syscall.Close(theirs)
		statsFD = len(files)
		files = append(files, uintptr(theirs))
	}
	env := s.cfg.Env
	if env == nil {
		env = os.Environ()
	}
	env = append(env[:len(env):len(env)], fmt.Sprintf("%s=%d:%d:%d:%d", workerEnv, sl.id, s.gen, s.cfg.Processes, statsFD))
	pid, err := syscall.ForkExec(s.exe, append([]string{s.exe}, s.cfg.Args...), &syscall.ProcAttr{
		Env:   env,
		Files: files,
		// If the supervisor dies without stopping its workers, they stop
		// too. (The signal follows the thread that started them: Run's,
		// which is the locked main thread.)
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM},
	})
	wpipe.Close()
	if err == nil {
		w.proc, err = os.FindProcess(pid)
	}
	if err != nil {
		r.Close()
		if stats != nil {
			stats.Close()
		}
		return nil, err
	}
	s.notify(Event{Kind: Started, PID: pid, Slot: sl.id, Reason: reason, Stats: stats})
	go s.watch(w, r)
	return w, nil
}

// watch relays a worker's control messages and its exit to the main loop.
func (s *supervisor) watch(w *worker, control *os.File) {
	lines := bufio.NewScanner(control)
	for lines.Scan() {
		kind, detail, _ := strings.Cut(lines.Text(), " ")
		s.events <- event{w: w, kind: kind, detail: detail}
	}
	control.Close()
	state, err := w.proc.Wait() // reaps it: no zombies
	s.events <- event{w: w, kind: "exit", state: state, err: err}
}

// handle applies one event. It reports an exit status and true when the
// supervisor must stop (the first workers could not start).
func (s *supervisor) handle(ev event) (int, bool) {
	w, sl := ev.w, s.slots[ev.w.slot-firstSlotID]
	switch ev.kind {
	case msgReady:
		w.ready = true
		s.notify(Event{Kind: Ready, PID: w.proc.Pid, Slot: w.slot})
		s.workerReady(w, sl)
	case msgRecycle:
		if sl.current == w {
			s.cfg.Log.Info("recycling a worker process", "process", w.slot, "pid", w.proc.Pid, "reason", ev.detail)
			sl.recycle = ev.detail
			s.recyclePending()
		}
	case "exit":
		return s.workerExited(w, sl, ev.state)
	}
	return 0, false
}

func (s *supervisor) workerReady(w *worker, sl *slot) {
	if !s.started {
		for _, other := range s.slots {
			if other.current == nil || !other.current.ready {
				return
			}
		}
		s.started = true
		s.cfg.Ready(s.addr, s.tlsAddr)
		return
	}
	if s.reload != nil && s.reload.workers[w] {
		s.reload.waiting--
		if s.reload.waiting == 0 {
			s.finishReload()
		}
	}
}

func (s *supervisor) workerExited(w *worker, sl *slot, state *os.ProcessState) (int, bool) {
	s.notify(Event{Kind: Exited, PID: w.proc.Pid, Slot: w.slot})
	status := exitStatus(state)
	wasDraining, wasCurrent, wasNext := s.draining[w], sl.current == w, sl.next == w
	delete(s.draining, w)
	if wasCurrent {
		sl.current = nil
	}
	if wasNext {
		sl.next = nil
	}
	switch {
	case wasDraining:
	case !s.started:
		// The first generation failed to start (the app did not import, say):
		// its own output says why.
		s.cfg.Log.Error("a worker process exited before it was ready; stopping", "process", w.slot, "status", status)
		return max(status, 1), true
	case wasNext:
		s.cfg.Log.Error("reload failed: a new worker process exited before it was ready; the old ones keep serving",
			"process", w.slot, "status", status, "reason", s.reload.reason)
		s.abortReload()
	case wasCurrent:
		if time.Since(w.started) >= stableUptime {
			sl.failures = 0
		}
		delay := time.Duration(0)
		if sl.failures > 0 {
			delay = min(firstBackoff<<(sl.failures-1), maxBackoff)
		}
		sl.failures++
		sl.restartAt = time.Now().Add(delay)
		s.cfg.Log.Error("worker process exited; replacing it", "process", w.slot, "pid", w.proc.Pid,
			"status", describeExit(state), "in", delay)
	}
	return 0, false
}

// restartDue starts replacements for dead workers whose back-off is over.
func (s *supervisor) restartDue() {
	for _, sl := range s.slots {
		if sl.current != nil || sl.restartAt.IsZero() || time.Now().Before(sl.restartAt) {
			continue
		}
		w, err := s.start(sl, ReasonExit)
		if err != nil {
			s.cfg.Log.Error("cannot start a worker process", "process", sl.id, "err", err)
			sl.restartAt = time.Now().Add(maxBackoff)
			continue
		}
		sl.current, sl.restartAt = w, time.Time{}
	}
}

func (s *supervisor) untilNextRestart() time.Duration {
	next := time.Hour
	for _, sl := range s.slots {
		if sl.current == nil && !sl.restartAt.IsZero() {
			next = min(next, max(time.Until(sl.restartAt), time.Millisecond))
		}
	}
	return next
}

// startReload replaces every worker, as SIGHUP asks.
func (s *supervisor) startReload(reason string) {
	if s.reload != nil || !s.started {
		s.cfg.Log.Warn("reload not started: one is already under way, or start-up is not finished", "reason", reason)
		return
	}
	s.cfg.Log.Info("reloading: starting a new generation of workers", "reason", reason)
	s.beginReload(reason, ReasonReload, s.slots)
}

// beginReload starts a new generation for slots; why is the Event.Reason
// of its workers.
func (s *supervisor) beginReload(reason, why string, slots []*slot) {
	s.gen++
	r := &reload{reason: reason, workers: map[*worker]bool{}, started: time.Now()}
	for _, sl := range slots {
		w, err := s.start(sl, why)
		if err != nil {
			s.cfg.Log.Error("cannot start a worker process", "process", sl.id, "err", err)
			continue
		}
		sl.next = w
		r.workers[w] = true
		r.waiting++
	}
	s.reload = r
	if r.waiting == 0 {
		s.reload = nil
	}
}

// recyclePending replaces the workers that asked for it, unless a reload
// is under way (it runs again when that one ends).
func (s *supervisor) recyclePending() {
	if s.reload != nil {
		return
	}
	var slots []*slot
	var reasons []string
	for _, sl := range s.slots {
		if sl.recycle != "" && sl.current != nil {
			slots = append(slots, sl)
			reasons = append(reasons, sl.recycle)
		}
		sl.recycle = ""
	}
	if len(slots) > 0 {
		s.beginReload("recycle: "+strings.Join(reasons, "; "), ReasonRecycle, slots)
	}
}

// finishReload puts the new workers in place and stops the old ones.
func (s *supervisor) finishReload() {
	for _, sl := range s.slots {
		if sl.next == nil || !s.reload.workers[sl.next] {
			continue
		}
		if old := sl.current; old != nil {
			s.stop(old)
		}
		sl.current, sl.next = sl.next, nil
		sl.failures = 0
	}
	s.cfg.Log.Info("reload done", "reason", s.reload.reason, "generation", s.gen,
		"took", time.Since(s.reload.started).Round(time.Millisecond))
	s.reload = nil
	s.recyclePending()
}

// abortReload stops the new workers of a failed reload.
func (s *supervisor) abortReload() {
	for _, sl := range s.slots {
		if sl.next != nil && s.reload.workers[sl.next] {
			s.stop(sl.next)
			sl.next = nil
		}
	}
	s.reload = nil
	s.recyclePending()
}

func (s *supervisor) checkReloadTimeout() {
	if s.reload != nil && time.Since(s.reload.started) > s.cfg.ReadyTimeout {
		s.cfg.Log.Error("reload failed: new workers did not start accepting in time; the old ones keep serving",
			"timeout", s.cfg.ReadyTimeout, "reason", s.reload.reason)
		s.abortReload()
	}
}

// stop asks a worker to finish its requests and exit.
func (s *supervisor) stop(w *worker) {
	w.stopping = true
	s.draining[w] = true
	s.notify(Event{Kind: Stopping, PID: w.proc.Pid, Slot: w.slot})
	_ = w.proc.Signal(syscall.SIGTERM)
}

// signalAll passes sig on to every running worker.
func (s *supervisor) signalAll(sig os.Signal) {
	for _, w := range s.running() {
		_ = w.proc.Signal(sig)
	}
}

func (s *supervisor) running() []*worker {
	var all []*worker
	for _, sl := range s.slots {
		for _, w := range []*worker{sl.current, sl.next} {
			if w != nil {
				all = append(all, w)
			}
		}
	}
	for w := range s.draining {
		all = append(all, w)
	}
	return all
}

// shutdown stops every worker, waits for them (killing any that outlive
// the shutdown timeout), and returns status.
func (s *supervisor) shutdown(status int) int {
	s.notify(Event{Kind: ShuttingDown})
	alive := map[*worker]bool{}
	for _, w := range s.running() {
		if !w.stopping {
			w.stopping = true
			_ = w.proc.Signal(syscall.SIGTERM)
		}
		alive[w] = true
	}
	deadline := time.NewTimer(s.cfg.ShutdownTimeout + 5*time.Second)
	defer deadline.Stop()
	for len(alive) > 0 {
		select {
		case ev := <-s.events:
			if ev.kind == "exit" {
				delete(alive, ev.w)
			}
		case <-deadline.C:
			for w := range alive {
				s.cfg.Log.Error("worker process did not stop in time; killing it", "process", w.slot, "pid", w.proc.Pid)
				_ = w.proc.Kill()
			}
			deadline.Reset(time.Hour)
		}
	}
	return status
}

// exitStatus is the process's exit code, or 1 if a signal ended it.
func exitStatus(state *os.ProcessState) int {
	if state == nil {
		return 1
	}
	if code := state.ExitCode(); code >= 0 {
		return code
	}
	return 1
}

func describeExit(state *os.ProcessState) string {
	if state == nil {
		return "unknown"
	}
	return state.String()
}
