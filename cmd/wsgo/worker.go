package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"wsgo/internal/accesslog"
	"wsgo/internal/config"
	"wsgo/internal/front"
	"wsgo/internal/python"
	"wsgo/internal/scheduler"
	"wsgo/internal/supervisor"
	"wsgo/internal/wsgi"
)

// runWorker is a worker process: it imports the app, serves the socket the
// supervisor passed until SIGTERM or SIGINT, then finishes its requests,
// runs the app's atexit handlers and exits.
func runWorker(cfg *config.Config, link *supervisor.Link, log *slog.Logger) int {
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
		Program:      programFor(cfg.Virtualenv),
		Argv0:        os.Args[0],
		PythonPath:   cfg.PythonPath,
		Multiprocess: link.Processes > 1,
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

	ln, err := link.Listener()
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
		return 1
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if err := link.Ready(); err != nil {
		log.Error("cannot reach the supervisor", "err", err)
		return 1
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	status := 0
	select {
	case <-signals:
	case err := <-serveErr:
		log.Error("server stopped", "err", err)
		status = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Drain(ctx, ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
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
