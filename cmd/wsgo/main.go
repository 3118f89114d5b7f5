// Command wsgo serves a Python WSGI application over HTTP from one binary
// with CPython embedded.
//
// The process the user starts is the supervisor (internal/supervisor): it
// opens the listening sockets and runs this same program again for each
// worker process (worker.go), which starts Python, the worker threads and
// the HTTP front. This file reads the command line and picks the role.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"time"

	"wsgo/internal/config"
	"wsgo/internal/python"
	"wsgo/internal/supervisor"
	"wsgo/internal/tlsconf"
)

// Set at build time by the Makefile.
var (
	version          = "dev"
	pythonExecutable = "python3"
)

func init() {
	// Python's main thread is the one that initialises it; keep that the
	// process's main thread, which is where Go starts main. (The
	// supervisor relies on it too: its workers' parent-death signal
	// follows the thread that started them.)
	runtime.LockOSThread()
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
	link, err := supervisor.WorkerLink()
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
		return 2
	}
	if link != nil {
		return runWorker(cfg, link, log.With("process", link.Slot))
	}
	if cfg.HTTPSSocket != "" {
		// The certificate is checked (or made) once here, so that a mistake
		// is reported before any worker starts; each worker reads it again.
		desc, err := tlsconf.Prepare(tlsSettings(cfg))
		if err != nil {
			fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
			return 2
		}
		if cfg.TLSSelfSigned {
			log.Warn("--tls-self-signed: serving HTTPS with a throw-away self-signed certificate made at start; for local development only, clients will not trust it", desc...)
		} else {
			log.Info("HTTPS certificate loaded", desc...)
		}
	}
	var watch func() bool
	if cfg.Reload {
		watch = supervisor.WatchPython(appDirs(cfg))
	}
	monitor, stopStats, err := serveStats(cfg, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: --stats-socket: %v\n", err)
		return 1
	}
	defer stopStats()
	ready := readiness(cfg)
	return supervisor.Run(supervisor.Config{
		Processes:       cfg.Processes,
		Addr:            cfg.HTTPSocket,
		TLSAddr:         cfg.HTTPSSocket,
		Args:            os.Args[1:],
		Env:             cfg.WorkerEnv(os.Environ()), // with the settings as resolved here
		Monitor:         monitor,
		ShutdownTimeout: time.Duration(cfg.ShutdownTimeout) * time.Second,
		ReadyTimeout:    2 * time.Minute,
		Watch:           watch,
		Log:             log,
		Ready: func(addr, tlsAddr net.Addr) {
			if addr != nil {
				fmt.Fprintf(os.Stderr, "wsgo: listening on http://%s (%s)\n", addr, ready)
			}
			if tlsAddr != nil {
				fmt.Fprintf(os.Stderr, "wsgo: listening on https://%s (%s)\n", tlsAddr, ready)
			}
			log.Info("serving", "app", cfg.Module, "processes", cfg.Processes, "workers", cfg.Workers,
				"python", python.Version())
		},
	})
}

// tlsSettings are the HTTPS flags, for tlsconf.
func tlsSettings(cfg *config.Config) tlsconf.Settings {
	return tlsconf.Settings{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, Passphrase: cfg.Passphrase,
		SelfSigned: cfg.TLSSelfSigned, Addr: cfg.HTTPSSocket}
}

// appDirs are the directories whose Python files --reload watches: the
// app's working directory and the --pythonpath ones.
func appDirs(cfg *config.Config) []string {
	dir := cfg.Chdir
	if dir == "" {
		dir = "."
	}
	return append([]string{dir}, cfg.PythonPath...)
}
