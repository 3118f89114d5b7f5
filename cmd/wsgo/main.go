// Command wsgo serves a Python WSGI application over HTTP from one binary
// with CPython embedded. This file turns the command line into a running
// server: it starts Python, the worker threads and the HTTP front, and
// shuts them down in order on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"wsgo/internal/accesslog"
	"wsgo/internal/config"
	"wsgo/internal/front"
	"wsgo/internal/python"
	"wsgo/internal/scheduler"
	"wsgo/internal/wsgi"
)

// Set at build time by the Makefile.
var (
	version          = "dev"
	pythonExecutable = "python3"
)

// shutdownTimeout bounds how long in-flight requests may run after SIGTERM.
const shutdownTimeout = 30 * time.Second

func init() {
	// Python's main thread is the one that initialises it; keep that the
	// process's main thread, which is where Go starts main.
	runtime.LockOSThread()
	// A worker running Python sits in a cgo call with a P (Go's right to
	// run Go code) that only Go's sysmon can take back, after 20 µs or
	// more. One P more than there are CPUs lets the network goroutines run
	// on at once instead; measured on one CPU, it cuts context switches
	// per request from about 1 to about 0.6. GOMAXPROCS in the
	// environment still decides.
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	}
}

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := config.Parse(os.Args[1:], os.Stdout)
	if errors.Is(err, config.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: %v\nRun wsgo --help for the list of flags.\n", err)
		return 2
	}
	if cfg.Version {
		fmt.Printf("wsgo %s (Python %s)\n", version, python.Version())
		return 0
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))

	if cfg.Chdir != "" {
		if err := os.Chdir(cfg.Chdir); err != nil {
			fmt.Fprintf(os.Stderr, "wsgo: --chdir: %v\n", err)
			return 2
		}
	}
	dir, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
		return 1
	}
	module, callable := cfg.ModuleAndCallable()
	pycfg := python.Config{
		Program:    programFor(cfg.Virtualenv),
		Argv0:      os.Args[0],
		PythonPath: cfg.PythonPath,
	}
	if err := python.Start(pycfg, dir, module, callable); err != nil {
		if !errors.Is(err, python.ErrAppLoad) {
			fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
		}
		return 1
	}

	queue := &scheduler.Queue[*wsgi.Exchange]{}
	pool := wsgi.StartPool(queue, cfg.Workers, time.Duration(cfg.RequestTimeout)*time.Second, log)
	access := accesslog.New(os.Stdout)
	handler := &front.Handler{Queue: queue, MaxBodySize: cfg.MaxBodySize, Access: access}
	srv := front.NewServer(handler, log)

	ln, err := net.Listen("tcp", cfg.HTTPSocket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: --http-socket: %v\n", err)
		return 1
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "wsgo: listening on http://%s\n", ln.Addr())
	log.Info("serving", "app", cfg.Module, "workers", cfg.Workers, "python", python.Version(), "program", pycfg.Program)

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	status := 0
	select {
	case sig := <-signals:
		log.Info("shutting down", "signal", sig.String())
	case err := <-serveErr:
		log.Error("server stopped", "err", err)
		status = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("requests still running at the shutdown deadline", "err", err)
	}
	queue.Close()
	pool.Wait()
	access.Close()
	python.Finalize()
	return status
}

// programFor names the Python executable whose installation the embedded
// interpreter adopts: the virtualenv's (from --virtualenv or an activated
// $VIRTUAL_ENV), so that its site-packages are used as under its own
// python, or else the one wsgo was built against.
func programFor(venv string) string {
	if venv == "" {
		venv = os.Getenv("VIRTUAL_ENV")
	}
	if venv == "" {
		return pythonExecutable
	}
	abs, err := filepath.Abs(venv)
	if err != nil {
		abs = venv
	}
	for _, name := range []string{"python3", "python"} {
		p := filepath.Join(abs, "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join(abs, "bin", "python3")
}
