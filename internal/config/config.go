// Package config defines wsgo's command line: every setting, its flag, its
// default and its help text, in one table that both parsing and --help use.
//
// It only describes and parses settings; it never acts on them.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Config is every setting of a wsgo run.
type Config struct {
	Module      string
	HTTPSocket  string
	Processes   int
	Workers     int
	Chdir       string
	PythonPath  []string
	Virtualenv  string
	MaxBodySize int64
	// RequestTimeout is in seconds; 0 means no limit.
	RequestTimeout int
	// ShutdownTimeout is in seconds.
	ShutdownTimeout int
	// CronTimeout is in seconds; 0 means no limit.
	CronTimeout int
	MaxRequests int
	// ReloadOnRSS is in MiB; 0 means never.
	ReloadOnRSS int
	Reload      bool
	SchedBatch  bool
	// StaticMap holds PREFIX=DIR pairs; SendfileRoots the directories
	// only reachable through X-Sendfile and X-Accel-Redirect.
	StaticMap     []string
	StaticMaxAge  int
	SendfileRoots []string
	// MaxAge is the response cache's longest lifetime in seconds; 0 turns
	// the cache off. CacheSize is its bound in MiB.
	MaxAge    int
	CacheSize int
	// TrustedProxies are CIDR prefixes (or "private") whose
	// X-Forwarded-For and X-Forwarded-Proto are believed.
	TrustedProxies []string
	QueueSize      int
	Version        bool
	Help           bool
}

// ErrHelp is returned by Parse after --help has printed the usage.
var ErrHelp = errors.New("help requested")

// listFlag is a repeatable string flag.
type listFlag struct{ values *[]string }

func (l listFlag) String() string {
	if l.values == nil {
		return ""
	}
	return strings.Join(*l.values, ",")
}

func (l listFlag) Set(v string) error {
	*l.values = append(*l.values, v)
	return nil
}

// flagSet binds every flag to c, with its default.
func flagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("wsgo", flag.ContinueOnError)
	fs.StringVar(&c.Module, "module", "", "Python module to serve, as NAME or NAME:CALLABLE (default callable: application, then app)")
	fs.StringVar(&c.HTTPSocket, "http-socket", "127.0.0.1:8000", "HOST:PORT to serve HTTP on (port 0 picks a free one)")
	fs.IntVar(&c.Processes, "processes", 1, "worker processes, each with its own interpreter and --workers threads")
	fs.IntVar(&c.Workers, "workers", 16, "Python worker threads per process")
	fs.StringVar(&c.Chdir, "chdir", "", "change to this directory before importing the module")
	fs.Var(listFlag{&c.PythonPath}, "pythonpath", "add a directory to the front of sys.path (repeatable)")
	fs.StringVar(&c.Virtualenv, "virtualenv", "", "use this virtualenv's packages (default: $VIRTUAL_ENV when set)")
	fs.Int64Var(&c.MaxBodySize, "max-body-size", 0, "largest request body in bytes, larger ones get 413 (0: no limit)")
	fs.IntVar(&c.RequestTimeout, "request-timeout", 60, "seconds a request may run before wsgo.RequestTimeoutException is raised in it (0: no limit)")
	fs.IntVar(&c.ShutdownTimeout, "shutdown-timeout", 30, "seconds running requests may take to finish after SIGTERM")
	fs.IntVar(&c.CronTimeout, "cron-timeout", 1800, "seconds a @wsgo.cron or @wsgo.timer job may run before wsgo.RequestTimeoutException is raised in it (0: no limit)")
	fs.IntVar(&c.MaxRequests, "max-requests", 0, "replace a worker process after about this many requests, plus up to 10% (0: never)")
	fs.IntVar(&c.ReloadOnRSS, "reload-on-rss", 0, "replace a worker process whose resident memory exceeds this many MiB (0: never)")
	fs.BoolVar(&c.Reload, "reload", false, "development: reload the workers when a .py file under the app's directories changes")
	fs.BoolVar(&c.SchedBatch, "sched-batch", true, "run worker processes under Linux's SCHED_BATCH policy, so that their threads do not preempt each other on every wake-up")
	fs.Var(listFlag{&c.StaticMap}, "static-map", "serve files under URL PREFIX from DIR, as PREFIX=DIR, before the app (repeatable; the longest prefix wins)")
	fs.IntVar(&c.StaticMaxAge, "static-max-age", 86400, "Cache-Control max-age, in seconds, of files served by --static-map")
	fs.Var(listFlag{&c.SendfileRoots}, "sendfile-root", "a directory whose files the app may send with X-Sendfile or X-Accel-Redirect without serving them publicly (repeatable)")
	fs.IntVar(&c.MaxAge, "max-age", 0, "cache responses whose Cache-Control has max-age for at most this many seconds (0: no cache)")
	fs.IntVar(&c.CacheSize, "cache-size", 64, "the response cache's size in MiB; least recently used responses go first")
	fs.Var(listFlag{&c.TrustedProxies}, "trusted-proxies", "believe X-Forwarded-For and X-Forwarded-Proto from these CIDR prefixes, comma-separated or repeated; \"private\" adds the private ranges (loopback is always trusted)")
	fs.IntVar(&c.QueueSize, "queue-size", 1000, "requests a process may hold waiting for a worker; when full the lowest priority one gets 503")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
	fs.BoolVar(&c.Help, "help", false, "print this help and exit")
	return fs
}

// Parse reads the command line (without the program name). It returns
// ErrHelp after printing usage to out for --help, and an error naming the
// problem for a bad flag or value.
func Parse(args []string, out io.Writer) (*Config, error) {
	c := &Config{}
	fs := flagSet(c)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(out)
			return nil, ErrHelp
		}
		return nil, err
	}
	if c.Help {
		Usage(out)
		return nil, ErrHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags take the form --name value)", fs.Arg(0))
	}
	if c.Version {
		return c, nil
	}
	switch {
	case c.Module == "":
		return nil, errors.New("--module is required, e.g. --module wsgi_app")
	case c.Workers < 1:
		return nil, fmt.Errorf("--workers must be at least 1, not %d", c.Workers)
	case c.Processes < 1:
		return nil, fmt.Errorf("--processes must be at least 1, not %d", c.Processes)
	case c.MaxBodySize < 0:
		return nil, fmt.Errorf("--max-body-size must not be negative")
	case c.RequestTimeout < 0 || c.ShutdownTimeout < 0 || c.MaxRequests < 0 || c.ReloadOnRSS < 0:
		return nil, fmt.Errorf("--request-timeout, --shutdown-timeout, --max-requests and --reload-on-rss must not be negative")
	case c.QueueSize < 1:
		return nil, fmt.Errorf("--queue-size must be at least 1, not %d", c.QueueSize)
	case c.CronTimeout < 0:
		return nil, fmt.Errorf("--cron-timeout must not be negative")
	case c.StaticMaxAge < 0 || c.MaxAge < 0 || c.CacheSize < 0:
		return nil, fmt.Errorf("--static-max-age, --max-age and --cache-size must not be negative")
	}
	return c, nil
}

// Usage prints every flag with its default.
func Usage(out io.Writer) {
	fmt.Fprintf(out, "Usage: wsgo --module NAME[:CALLABLE] [flags]\n\nFlags:\n")
	fs := flagSet(&Config{})
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(out, "  --%s\n        %s (default: %s)\n", f.Name, f.Usage, def)
	})
}

// ModuleAndCallable splits --module into the module and the callable name
// ("" for the default lookup).
func (c *Config) ModuleAndCallable() (string, string) {
	module, callable, _ := strings.Cut(c.Module, ":")
	return module, callable
}
