package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"wsgo/internal/accesslog"
	"wsgo/internal/config"
	"wsgo/internal/front"
	"wsgo/internal/metrics"
	"wsgo/internal/python"
	"wsgo/internal/supervisor"
	"wsgo/internal/wsgi"
)

// openAccessLog opens the access log as --log-format and --log-file say
// (nil for off). The file's path is made absolute first, so that a
// relative --log-file names a file where wsgo was started (as --config
// does), not under --chdir, and Reopen finds it again.
func openAccessLog(cfg *config.Config) (*accesslog.Logger, error) {
	format, err := accesslog.ParseFormat(cfg.LogFormat)
	if err != nil {
		return nil, err
	}
	path := cfg.LogFile
	if path != "" {
		if path, err = filepath.Abs(path); err != nil {
			return nil, err
		}
	}
	return accesslog.Open(path, format)
}

// serveStats serves --stats-socket (/metrics and /healthz) from the
// supervisor, which outlives every worker process. It returns the Monitor
// that keeps them informed (nil without --stats-socket) and a func that
// stops serving.
func serveStats(cfg *config.Config, log *slog.Logger) (supervisor.Monitor, func(), error) {
	if cfg.StatsSocket == "" {
		return nil, func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.StatsSocket)
	if err != nil {
		return nil, nil, err
	}
	stats := metrics.NewSupervisor(cfg.Processes, supervisor.RestartReasons)
	srv := &http.Server{Handler: stats.Handler(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	fmt.Fprintf(os.Stderr, "wsgo: stats on http://%s/metrics and /healthz\n", ln.Addr())
	monitor := func(ev supervisor.Event) {
		switch ev.Kind {
		case supervisor.Started:
			stats.Started(ev.PID, ev.Slot, ev.Reason, ev.Stats)
		case supervisor.Ready:
			stats.Ready(ev.PID)
		case supervisor.Stopping:
			stats.Stopping(ev.PID)
		case supervisor.Exited:
			stats.Exited(ev.PID)
		case supervisor.ShuttingDown:
			stats.ShuttingDown()
		}
	}
	return monitor, func() { srv.Close() }, nil
}

// processMetrics returns a worker process's metrics, which read their
// figures from the pool and from h's parts at each scrape; nil without a
// stats channel.
func processMetrics(link *supervisor.Link, pool *wsgi.Pool, h *front.Handler) *metrics.Process {
	if link.Stats == nil {
		return nil
	}
	return metrics.NewProcess(link.Slot, func(f *metrics.Figures) {
		s := pool.Stats()
		f.Workers, f.BusyWorkers, f.StuckWorkers = s.Workers, s.Busy, s.Stuck
		f.Timeouts, f.AppErrors = s.Timeouts, s.Errors
		f.QueueLength = h.Queue.Len()
		if h.Cache != nil {
			c := h.Cache.Stats()
			f.Cache = true
			f.CacheHits, f.CacheMisses, f.CacheBytes, f.CacheEntries = c.Hits, c.Misses, c.Bytes, c.Entries
		}
		f.BlockedClients, f.BlockedRequests = h.Blocker.Stats()
		f.ParkedRequests, f.ParkedTotal = h.Parking.Stats()
		if m, ok := pool.PythonMemory(); ok {
			f.Python, f.PythonBlocks, f.PythonGCGeneration = true, m.Blocks, m.GCCounts
		}
	})
}

// readiness describes what serves, for the line that says wsgo is ready:
// the app, the processes and their workers, and the Python in use.
func readiness(cfg *config.Config) string {
	pythonVersion, _, _ := strings.Cut(python.Version(), " ")
	program := programFor(cfg.Virtualenv)
	if !strings.Contains(program, "/") {
		if path, err := exec.LookPath(program); err == nil {
			program = path
		}
	}
	return fmt.Sprintf("app %s, %d %s × %d workers, Python %s at %s", cfg.Module,
		cfg.Processes, plural(cfg.Processes, "process", "processes"), cfg.Workers, pythonVersion, program)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
