package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"wsgo/internal/cache"
	"wsgo/internal/clients"
	"wsgo/internal/config"
	"wsgo/internal/cron"
	"wsgo/internal/front"
	"wsgo/internal/parking"
	"wsgo/internal/procstat"
	"wsgo/internal/python"
	"wsgo/internal/static"
	"wsgo/internal/supervisor"
	"wsgo/internal/tlsconf"
	"wsgo/internal/wsgi"
)

// runWorker is a worker process: it imports the app, serves the socket the
// supervisor passed until SIGTERM or SIGINT, then finishes its requests,
// runs the app's atexit handlers and exits.
func runWorker(cfg *config.Config, link *supervisor.Link, log *slog.Logger) int {
	// Catch signals from the start: one that arrives while the app imports
	// waits for the server to be up instead of being lost (SIGUSR1/2,
	// SIGWINCH) or killing the process without a drain (SIGTERM).
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	access, err := openAccessLog(cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: --log-file: %v\n", err)
		return 2
	}
	if cfg.SchedBatch {
		if err := scheduleAsBatch(); err != nil {
			log.Warn("could not switch to SCHED_BATCH; running with the normal policy", "err", err)
		}
	}
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
	// Before Python starts: a self-signed certificate's key comes in the
	// environment, which the app must not see.
	var tlsConfig *tls.Config
	if cfg.HTTPSSocket != "" {
		if tlsConfig, err = tlsconf.ServerConfig(tlsSettings(cfg)); err != nil {
			fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
			return 2
		}
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

	files, err := static.New(cfg.StaticMap, cfg.SendfileRoots, cfg.StaticMaxAge, int64(cfg.StaticMemory)<<20)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
		return 2
	}
	var responses *cache.Cache
	if cfg.MaxAge > 0 {
		responses = cache.New(time.Duration(cfg.MaxAge)*time.Second, int64(cfg.CacheSize)<<20)
	}
	trusted, err := clients.ParseTrusted(cfg.TrustedProxies)
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: --trusted-proxies: %v\n", err)
		return 2
	}
	queue := front.NewQueue(cfg.QueueSize)
	parked := parking.NewLot()
	python.SetParkNotifier(func(channels string, action int, arg string) int {
		return parked.Notify(parking.Channels(channels), parking.Wake{Action: parking.Action(action), Arg: arg})
	})
	pool := wsgi.StartPool(queue, cfg.Workers, time.Duration(cfg.RequestTimeout)*time.Second, log)
	handler := &front.Handler{Queue: queue, MaxBodySize: cfg.MaxBodySize, Access: access,
		Static: files, Cache: responses, Log: log,
		Clients: clients.New(trusted), Blocker: clients.NewBlocker(log), Parking: parked}
	handler.Metrics = processMetrics(link, pool, handler)
	handler.Metrics.Serve(link.Stats)
	srv := front.NewServer(handler, log)

	sockets := front.Listeners{H2C: cfg.H2C, TLS: tlsConfig}
	if cfg.HTTPSocket != "" {
		sockets.HTTP, err = link.Listener()
	}
	if err == nil && tlsConfig != nil {
		sockets.HTTPS, err = link.TLSListener()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "wsgo: %v\n", err)
		return 1
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(sockets) }()
	if err := link.Ready(); err != nil {
		log.Error("cannot reach the supervisor", "err", err)
		return 1
	}
	// The app's @wsgo.timer and @wsgo.cron jobs run in the first process
	// only, once it serves (nil: none, or not this process).
	var jobs *cron.Scheduler
	if link.First() {
		jobs = cron.Start(python.Jobs(), time.Duration(cfg.CronTimeout)*time.Second, log)
	}

	label := fmt.Sprintf("process %d (pid %d)", link.Slot, os.Getpid())
	recycle := newRecycler(cfg, link, log)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	status := 0
serve:
	for {
		select {
		case sig := <-signals:
			switch sig {
			case syscall.SIGUSR1:
				pool.DumpStacks(os.Stdout, label)
			case syscall.SIGUSR2:
				pool.Report(os.Stdout, label)
			case syscall.SIGWINCH:
				// Log rotation. Not SIGHUP or SIGUSR1 (taken), and
				// ignored by default, so a stray one does no harm.
				if err := access.Reopen(); err != nil {
					log.Error("cannot reopen the access log; it goes on in the old file", "err", err)
				} else if cfg.LogFile != "" {
					log.Info("access log reopened", "file", cfg.LogFile)
				}
			default:
				break serve
			}
		case <-tick.C:
			recycle.check(pool.Requests())
		case err := <-serveErr:
			log.Error("server stopped", "err", err)
			status = 1
			break serve
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout)*time.Second)
	defer cancel()
	// Jobs start no new runs from now on; running ones have until the same
	// deadline as requests.
	deadline, _ := ctx.Deadline()
	jobsStopped := make(chan struct{})
	go func() { jobs.Stop(deadline); close(jobsStopped) }()
	if err := srv.Drain(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("requests still running at the shutdown deadline", "err", err)
	}
	queue.Close()
	pool.Wait()
	<-jobsStopped
	access.Close()
	handler.Metrics.Final() // after the last request is counted
	python.Finalize()
	return status
}

// scheduleAsBatch puts every thread of this process under SCHED_BATCH;
// threads started later inherit it from the thread that starts them.
//
// Under the normal policy, each time one of our threads wakes another (Go
// readying a goroutine on another thread, sysmon's 20 µs ticks, a worker
// woken for a request) the woken thread preempts the one running Python if
// they share a CPU. Batch threads are not preempted by wake-ups, only by
// the scheduler tick, so the Python thread runs its requests in longer
// stretches and the network threads gather more work per turn. Measured on
// one CPU: hello 27k -> 40k requests/s, context switches per request 0.9 ->
// 0.16. The cost is that under CPU contention with other programs, a
// wake-up waits for the next tick (a few ms) instead of preempting.
func scheduleAsBatch() error {
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH}
	for _, t := range tids {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetAttr(tid, &attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
			return err
		}
	}
	return nil
}

// recycler asks the supervisor for a fresh process after --max-requests
// requests (plus a random tenth, so that processes started together do not
// all recycle at once) or above --reload-on-rss.
type recycler struct {
	link        *supervisor.Link
	log         *slog.Logger
	maxRequests int64
	maxRSSKiB   int64
	asked       bool
}

func newRecycler(cfg *config.Config, link *supervisor.Link, log *slog.Logger) *recycler {
	r := &recycler{link: link, log: log, maxRSSKiB: int64(cfg.ReloadOnRSS) << 10}
	if cfg.MaxRequests > 0 {
		r.maxRequests = int64(cfg.MaxRequests) + rand.Int64N(int64(cfg.MaxRequests)/10+1)
	}
	return r
}

// check asks once for a replacement when a limit is passed.
func (r *recycler) check(requests int64) {
	if r.asked {
		return
	}
	reason := ""
	if r.maxRequests > 0 && requests >= r.maxRequests {
		reason = fmt.Sprintf("max-requests (%d served)", requests)
	} else if r.maxRSSKiB > 0 {
		if m, err := procstat.ReadMemory(os.Getpid()); err == nil && m.RSS > r.maxRSSKiB {
			reason = fmt.Sprintf("reload-on-rss (%d MiB resident)", m.RSS>>10)
		}
	}
	if reason != "" {
		r.asked = true
		if err := r.link.Recycle(reason); err != nil {
			r.log.Error("cannot ask the supervisor for a replacement", "err", err)
		}
	}
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
