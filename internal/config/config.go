// Package config defines wsgo's settings: every setting, its flag, its
// default and its help text, in one table (flagSet) that the command line,
// the WSGO_* environment variables, the --config file and --help all use,
// so that no setting is listed twice. A setting's value comes from the
// first of these that gives it: flag, environment, file, default.
//
// It only describes and parses settings; it never acts on them.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
)

// Config is every setting of a wsgo run.
type Config struct {
	Module     string
	HTTPSocket string

	// HTTPSSocket, when set, serves HTTPS (HTTP/2 by ALPN, or HTTP/1.1)
	// with the certificate in CertFile and its key in KeyFile (or in
	// CertFile), decrypted with Passphrase, or with a throw-away one
	// (TLSSelfSigned). HTTPSocket is then served only when given too; H2C
	// serves cleartext HTTP/2 there as well. See tls.go.
	HTTPSSocket   string
	CertFile      string
	KeyFile       string
	Passphrase    string
	TLSSelfSigned bool
	H2C           bool

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
	// StaticMemory is the MiB kept for small static files.
	StaticMap     []string
	StaticMaxAge  int
	StaticMemory  int
	SendfileRoots []string
	// MaxAge is the response cache's longest lifetime in seconds; 0 turns
	// the cache off. CacheSize is its bound in MiB.
	MaxAge    int
	CacheSize int
	// TrustedProxies are CIDR prefixes (or "private") whose
	// X-Forwarded-For and X-Forwarded-Proto are believed.
	TrustedProxies []string
	QueueSize      int
	// ConfigFile is the TOML file the settings were read from ("" for
	// none); it is never passed on to worker processes (see Args).
	ConfigFile string
	// LogFormat is the access log's: combined, json or off. LogFile is
	// where it goes ("" for stdout).
	LogFormat string
	LogFile   string
	// StatsSocket is the HOST:PORT of the metrics and health endpoint (""
	// for none).
	StatsSocket string
	Version     bool
	Help        bool

	// flags is the flag set bound to this Config by Parse, through which
	// Args reads every setting back; origins says where each setting that
	// is not a default came from, for error messages.
	flags   *flag.FlagSet
	origins map[string]string
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

// Get implements flag.Getter: the config file takes an array for it.
func (l listFlag) Get() any { return *l.values }

// flagSet binds every flag to c, with its default. It is the one list of
// settings: the environment and the config file are read through it too.
// A flag's Value must print (String) what its Set parses back, since
// worker processes are given the resolved settings as flags (see Args).
func flagSet(c *Config) *flag.FlagSet {
	fs := flag.NewFlagSet("wsgo", flag.ContinueOnError)
	fs.StringVar(&c.Module, "module", "", "Python module to serve, as NAME or NAME:CALLABLE (default callable: application, then app)")
	fs.StringVar(&c.HTTPSocket, "http-socket", "127.0.0.1:8000", "HOST:PORT to serve HTTP on (port 0 picks a free one)")
	tlsFlags(fs, c)
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
	fs.IntVar(&c.StaticMemory, "static-memory", 16, "MiB of memory for keeping static files of up to 64 KiB ready to send (0: always read them from disk)")
	fs.Var(listFlag{&c.SendfileRoots}, "sendfile-root", "a directory whose files the app may send with X-Sendfile or X-Accel-Redirect without serving them publicly (repeatable)")
	fs.IntVar(&c.MaxAge, "max-age", 0, "cache responses whose Cache-Control has max-age for at most this many seconds (0: no cache)")
	fs.IntVar(&c.CacheSize, "cache-size", 64, "the response cache's size in MiB; least recently used responses go first")
	fs.Var(listFlag{&c.TrustedProxies}, "trusted-proxies", "believe X-Forwarded-For and X-Forwarded-Proto from these CIDR prefixes, comma-separated or repeated; \"private\" adds the private ranges (loopback is always trusted)")
	fs.IntVar(&c.QueueSize, "queue-size", 1000, "requests a process may hold waiting for a worker; when full the lowest priority one gets 503")
	fs.StringVar(&c.ConfigFile, "config", "", "read settings from this TOML file: the flags' names as keys, e.g. workers = 4 (flags and WSGO_* variables override it)")
	fs.StringVar(&c.LogFormat, "log-format", "combined", "access log format: combined, json or off")
	fs.StringVar(&c.LogFile, "log-file", "", "append the access log to this file instead of stdout, reopened on SIGWINCH")
	fs.StringVar(&c.StatsSocket, "stats-socket", "", "HOST:PORT to serve Prometheus metrics (/metrics) and a health check (/healthz) on")
	fs.BoolVar(&c.Version, "version", false, "print the version and exit")
	fs.BoolVar(&c.Help, "help", false, "print this help and exit")
	return fs
}

// Parse reads the settings: the command line (without the program name),
// then the WSGO_* environment variables and the --config file for what the
// command line leaves unset. It returns ErrHelp after printing usage to out
// for --help, and an error naming the problem, and where the bad setting
// came from, for a bad flag, variable, key or value.
//
// In a worker process, the settings are the supervisor's, from SettingsEnv
// (see WorkerEnv), instead of args.
func Parse(args []string, out io.Writer) (*Config, error) {
	resolved, worker, err := workerArgs()
	if err != nil {
		return nil, err
	}
	if worker {
		args = resolved
	}
	return Load(args, os.LookupEnv, out)
}

// Load is Parse with the environment read through getenv.
func Load(args []string, getenv func(string) (string, bool), out io.Writer) (*Config, error) {
	// The command line alone first: --help and --version need nothing more,
	// a bad flag is reported as one, and it may name the config file.
	cmdline := &Config{}
	fs := flagSet(cmdline)
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			Usage(out)
			return nil, ErrHelp
		}
		return nil, err
	}
	if cmdline.Help {
		Usage(out)
		return nil, ErrHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (flags take the form --name value)", fs.Arg(0))
	}
	if cmdline.Version {
		return cmdline, nil
	}
	c, err := resolve(args, fs, getenv)
	if err == nil {
		err = c.validate()
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// validate checks the settings' values, naming where a bad one came from.
func (c *Config) validate() error {
	bad := func(name, format string, args ...any) error {
		return fmt.Errorf("%s %s", c.origin(name), fmt.Sprintf(format, args...))
	}
	switch {
	case c.Module == "":
		return bad("module", "is required, e.g. --module wsgi_app")
	case c.Workers < 1:
		return bad("workers", "must be at least 1, not %d", c.Workers)
	case c.Processes < 1:
		return bad("processes", "must be at least 1, not %d", c.Processes)
	case c.QueueSize < 1:
		return bad("queue-size", "must be at least 1, not %d", c.QueueSize)
	case c.LogFormat != "combined" && c.LogFormat != "json" && c.LogFormat != "off":
		return bad("log-format", "must be combined, json or off, not %q", c.LogFormat)
	}
	if c.StatsSocket != "" {
		if _, _, err := net.SplitHostPort(c.StatsSocket); err != nil {
			return bad("stats-socket", "must be HOST:PORT, not %q", c.StatsSocket)
		}
	}
	for _, name := range []string{"max-body-size", "request-timeout", "shutdown-timeout", "cron-timeout",
		"max-requests", "reload-on-rss", "static-max-age", "static-memory", "max-age", "cache-size"} {
		if n := c.flags.Lookup(name).Value.(flag.Getter).Get(); negative(n) {
			return bad(name, "must not be negative, not %v", n)
		}
	}
	return c.checkTLS()
}

func negative(v any) bool {
	switch n := v.(type) {
	case int:
		return n < 0
	case int64:
		return n < 0
	}
	return false
}

// Usage prints every flag with its default.
func Usage(out io.Writer) {
	fmt.Fprintf(out, "Usage: wsgo --module NAME[:CALLABLE] [flags]\n\n"+
		"Every flag but --help and --version may also be set as an environment variable,\n"+
		"%sNAME_IN_CAPITALS (%s=8), or as a key of the --config file\n"+
		"(workers = 8); a flag wins over the variable, which wins over the file.\n\nFlags:\n",
		EnvPrefix, EnvName("workers"))
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
