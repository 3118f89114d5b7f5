package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"wsgo/internal/procstat"
)

// A server is one WSGI server configuration under test. Every configuration
// runs as one worker process with its threads, greenlets or goroutines.
type server struct {
	// Name is the server's identifier in -servers.
	Name string
	// Label is how BENCHMARKS.md names it.
	Label string
	// Wsgo marks a wsgo configuration: the tables show its ratio to each server.
	Wsgo bool
	// ThreadPeer marks the thread/process-based peers that the targets
	// compare wsgo with (not the Go floor, not gevent).
	ThreadPeer bool
	// Only lists the workloads this configuration runs; nil means all (a
	// workload may in turn name its servers: workload.runs).
	Only []string
	// NoCache leaves a wsgo configuration's response cache off: no
	// --max-age even for a workload that sets MaxAge.
	NoCache bool
	// ReadyLine, when set, is a substring the server prints on stderr once it
	// is listening; the harness waits for it as well as for the port.
	ReadyLine string
	// Logging says whether and where the server writes a line per request.
	Logging func(c *config) string
	// Command returns the server's argv (before the taskset prefix) and its
	// working directory, for workload w listening on 127.0.0.1:port.
	Command func(c *config, w workload, port int) (argv []string, dir string)
}

// runs reports whether s takes part in workload w.
func (s server) runs(w string) bool {
	if s.Only == nil {
		return true
	}
	for _, o := range s.Only {
		if o == w {
			return true
		}
	}
	return false
}

// caches reports whether s answers w from wsgo's response cache.
func (s server) caches(w workload) bool {
	return s.Wsgo && !s.NoCache && w.MaxAge > 0
}

// label is how the tables name s on workload w: its Label, plus the
// --max-age it runs with when it caches w.
func (s server) label(w workload) string {
	if s.caches(w) {
		return s.Label + " --max-age " + strconv.Itoa(w.MaxAge)
	}
	return s.Label
}

// servers lists every configuration in the order they appear in the tables.
var servers = []server{
	wsgoServer("wsgo", "wsgo --workers 16", 16, true, nil),
	wsgoServer("wsgo-256", "wsgo --workers 256", 256, true, []string{"sleep20ms"}),
	wsgoServer("wsgo-nocache", "wsgo --workers 16 (no cache)", 16, false, []string{"cached"}),
	// Every file read from disk, as the Go floor and uWSGI do.
	wsgoServer("wsgo-disk", "wsgo --workers 16 --static-memory 0", 16, true, []string{"static50k"}, "--static-memory", "0"),
	{
		Name: "go-floor", Label: "Go net/http floor", Only: []string{"hello"},
		Logging: func(*config) string { return "off (no logging)" },
		Command: func(c *config, w workload, port int) ([]string, string) {
			return []string{c.self, "-floor-server", strconv.Itoa(port)}, ""
		},
	},
	{
		Name: "go-fileserver", Label: "Go http.FileServer floor", Only: []string{"static50k"},
		Logging: func(*config) string { return "off (no logging)" },
		Command: func(c *config, w workload, port int) ([]string, string) {
			return []string{c.self, "-fileserver-floor", strconv.Itoa(port), c.staticDir}, ""
		},
	},
	{
		Name: "uwsgi", Label: "uWSGI 1×16 threads", ThreadPeer: true,
		Logging: func(c *config) string {
			if c.peerLogs {
				return "on, request log to /dev/null (`--req-logger file:/dev/null`)"
			}
			return "off (`--disable-logging`)"
		},
		Command: func(c *config, w workload, port int) ([]string, string) {
			plugins := "python3"
			if c.peerLogs {
				plugins += ",logfile"
			}
			if w.Name == "stream1m" {
				plugins += ",transformation_chunked"
			}
			argv := []string{"uwsgi", "--plugin", plugins,
				"--http11-socket", addr(port), "--processes", "1", "--threads", "16",
				"--listen", "1024", "--need-app", "--die-on-term",
				"--module", w.Module + ":application"}
			if c.peerLogs {
				argv = append(argv, "--req-logger", "file:/dev/null")
			} else {
				argv = append(argv, "--disable-logging")
			}
			if w.Static {
				// Served by the worker thread with sendfile(), uWSGI's
				// default (no --offload-threads). uWSGI writes the headers,
				// then sendfile()s the file; without TCP_NODELAY, Nagle's
				// algorithm holds a file smaller than the MSS (64 KB on
				// loopback) until the client's delayed ACK of the headers,
				// some 40 ms: about 370 requests/s at 16 threads.
				argv = append(argv, "--static-map", c.staticMap(), "--tcp-nodelay")
			}
			if w.Name == "stream1m" {
				// uWSGI's http11-socket sends a body without Content-Length
				// delimited by closing the connection, which wrk cannot read;
				// the chunked transformation frames it as HTTP/1.1 expects.
				argv = append(argv, "--route-run", "chunked:")
			}
			return argv, c.appsDir
		},
	},
	gunicornServer("gunicorn-sync", "gunicorn sync (1 worker)", nil, "-k", "sync"),
	gunicornServer("gunicorn-gthread", "gunicorn gthread 1×16 threads", nil, "-k", "gthread", "--threads", "16"),
	gunicornServer("gunicorn-gevent", "gunicorn gevent (1 worker)", []string{"sleep20ms"},
		"-k", "gevent", "--worker-connections", "1000"),
	{
		Name: "waitress", Label: "waitress 16 threads", ThreadPeer: true,
		Logging: func(*config) string { return "off (waitress has no access log of its own)" },
		Command: func(c *config, w workload, port int) ([]string, string) {
			// The default --connection-limit of 100 would leave half of the
			// sleep20ms connections unaccepted; gunicorn allows 1000.
			return []string{c.python, "-m", "waitress", "--listen", addr(port),
				"--threads", "16", "--connection-limit", "1000",
				w.Module + ":application"}, c.appsDir
		},
	},
}

// wsgoServer describes bin/wsgo with the given number of workers, with its
// response cache on (--max-age) for the workloads that set MaxAge if cache,
// and extra arguments.
func wsgoServer(name, label string, workers int, cache bool, only []string, extra ...string) server {
	s := server{
		Name: name, Label: label, Wsgo: true, Only: only, NoCache: !cache,
		ReadyLine: "wsgo: listening on http://",
		Logging:   func(*config) string { return "on, access log on stdout to /dev/null" },
	}
	s.Command = func(c *config, w workload, port int) ([]string, string) {
		argv := []string{c.wsgo, "--module", w.Module, "--chdir", c.appsDir,
			"--http-socket", addr(port), "--workers", strconv.Itoa(workers)}
		if w.Static {
			argv = append(argv, "--static-map", c.staticMap())
		}
		if s.caches(w) {
			argv = append(argv, "--max-age", strconv.Itoa(w.MaxAge))
		}
		return append(argv, extra...), ""
	}
	return s
}

// gunicornServer describes gunicorn with one worker of the given kind.
func gunicornServer(name, label string, only []string, worker ...string) server {
	return server{
		Name: name, Label: label, ThreadPeer: only == nil, Only: only,
		Logging: func(c *config) string {
			if c.peerLogs {
				return "on, access log on stdout to /dev/null (`--access-logfile -`)"
			}
			return "off (gunicorn's default)"
		},
		Command: func(c *config, w workload, port int) ([]string, string) {
			argv := append([]string{c.python, "-m", "gunicorn", "-w", "1"}, worker...)
			argv = append(argv, "-b", addr(port))
			if c.peerLogs {
				argv = append(argv, "--access-logfile", "-")
			}
			return append(argv, w.Module+":application"), c.appsDir
		},
	}
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

// findServer returns the server called name.
func findServer(name string) (server, bool) {
	for _, s := range servers {
		if s.Name == name {
			return s, true
		}
	}
	return server{}, false
}

// freePort asks the kernel for a free loopback port. Another process could
// take it before the server binds it; on a benchmark machine none does.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// A proc is a running server process (and its process group).
type proc struct {
	cmd     *exec.Cmd
	argv    []string
	port    int
	logPath string
	ready   chan struct{} // closed when the ready line has been seen
	exited  chan struct{} // closed when the process has been reaped
	drained chan struct{} // closed when stderr has reached EOF
	waitErr error
}

// startServer starts s for w under taskset on the server CPU, with stdout
// on /dev/null and stderr copied to a log file in c.logDir.
func startServer(c *config, s server, w workload) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	argv, dir := s.Command(c, w, port)
	full := append([]string{"taskset", "-c", c.serverCPU}, argv...)
	logPath := filepath.Join(c.logDir, fmt.Sprintf("%s-%s.log", w.Name, s.Name))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		logFile.Close()
		return nil, err
	}
	defer devnull.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		logFile.Close()
		return nil, err
	}
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Dir = dir
	cmd.Env = serverEnv()
	cmd.Stdout = devnull
	cmd.Stderr = pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		logFile.Close()
		return nil, err
	}
	pw.Close()
	p := &proc{cmd: cmd, argv: full, port: port, logPath: logPath,
		ready: make(chan struct{}), exited: make(chan struct{}), drained: make(chan struct{})}
	go p.copyStderr(pr, logFile, s.ReadyLine)
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// serverEnv is the environment without PYTHON* variables, so that settings
// such as PYTHONUNBUFFERED on this machine do not reach any server.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PYTHON") {
			env = append(env, kv)
		}
	}
	return env
}

// copyStderr copies the server's stderr into its log file, closing p.ready
// at the first line containing readyLine (if any).
func (p *proc) copyStderr(r io.ReadCloser, log *os.File, readyLine string) {
	defer close(p.drained)
	defer r.Close()
	defer log.Close()
	var once sync.Once
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		log.WriteString(line)
		if readyLine != "" && strings.Contains(line, readyLine) {
			once.Do(func() { close(p.ready) })
		}
		if err != nil {
			return
		}
	}
}

// waitReady waits, at most timeout, for the ready line (when the server has
// one) and then until the port accepts a TCP connection.
func (p *proc) waitReady(timeout time.Duration, readyLine string) error {
	deadline := time.Now().Add(timeout)
	if readyLine != "" {
		select {
		case <-p.ready:
		case <-p.exited:
			return fmt.Errorf("exited before printing %q (%v)", readyLine, p.waitErr)
		case <-time.After(time.Until(deadline)):
			return fmt.Errorf("did not print %q within %s", readyLine, timeout)
		}
	}
	for {
		conn, err := net.DialTimeout("tcp", addr(p.port), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("exited before accepting connections (%v)", p.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("port %d not accepting connections within %s: %v", p.port, timeout, err)
		}
	}
}

// stop sends SIGTERM to the server's process group, then SIGKILL if it has
// not exited within grace, and waits for it to be reaped.
func (p *proc) stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	var err error
	select {
	case <-p.exited:
		err = fmt.Errorf("had already exited (%v)", p.waitErr)
	default:
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(grace):
			err = fmt.Errorf("ignored SIGTERM for %s; killed", grace)
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exited
		}
	}
	// Workers left behind by a master that exited first.
	syscall.Kill(-pgid, syscall.SIGKILL)
	select {
	case <-p.drained:
	case <-time.After(2 * time.Second):
	}
	return err
}

// logTail returns the last lines of the server's stderr log.
func (p *proc) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// readMem reads the memory figures of the process that serves: for wsgo,
// its (single) worker process rather than the supervisor that started it.
func readMem(pid int) (procstat.Memory, error) {
	if kids, err := procstat.Children(pid); err == nil && len(kids) == 1 {
		pid = kids[0]
	}
	return procstat.ReadMemory(pid)
}
