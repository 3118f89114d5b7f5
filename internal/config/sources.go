package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// EnvPrefix starts the name of every environment variable that sets a
// flag: WSGO_ then the flag's name in upper case with "-" as "_", so
// --http-socket is WSGO_HTTP_SOCKET. The names are exactly those of the
// flags (see EnvName): other WSGO_ variables, such as the supervisor's
// WSGO_WORKER and SettingsEnv for its worker processes, are not settings
// and are ignored.
const EnvPrefix = "WSGO_"

// SettingsEnv carries the supervisor's resolved settings to its worker
// processes (see WorkerEnv), as a JSON array of flags.
const SettingsEnv = "WSGO_SETTINGS"

// EnvName is the environment variable that sets the flag name.
func EnvName(name string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// commandLineOnly are the flags that are not settings: they are neither
// read from the environment or a file (--config is, from WSGO_CONFIG, but
// not from a file) nor passed on to worker processes.
func commandLineOnly(name string) bool {
	return name == "help" || name == "version" || name == "config"
}

// resolve applies the sources in rising precedence, the config file, the
// environment, the command line (already parsed once into cmdline), to a
// fresh Config. A source that sets a repeatable flag replaces what a lower
// one gave it rather than adding to it.
func resolve(args []string, cmdline *flag.FlagSet, getenv func(string) (string, bool)) (*Config, error) {
	c := &Config{origins: map[string]string{}}
	fs := flagSet(c)
	fs.SetOutput(io.Discard)
	c.flags = fs

	path, fromArgs := "", false
	cmdline.Visit(func(f *flag.Flag) { fromArgs = fromArgs || f.Name == "config" })
	if fromArgs {
		path = cmdline.Lookup("config").Value.String()
	} else if v, ok := getenv(EnvName("config")); ok {
		path = v
	}
	if path != "" {
		if err := c.loadFile(path); err != nil {
			return nil, err
		}
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || commandLineOnly(f.Name) {
			return
		}
		if v, ok := getenv(EnvName(f.Name)); ok {
			err = c.set(f, EnvName(f.Name), splitList(f, v))
		}
	})
	if err != nil {
		return nil, err
	}
	cmdline.Visit(func(f *flag.Flag) {
		resetList(fs.Lookup(f.Name))
		c.origins[f.Name] = "--" + f.Name
	})
	if err := fs.Parse(args); err != nil {
		return nil, err // parsed once already: cannot happen
	}
	c.ConfigFile = path
	return c, nil
}

// origin names where setting name came from, as the start of an error
// message: "--workers", "WSGO_WORKERS" or "wsgo.toml:3: workers".
func (c *Config) origin(name string) string {
	if o, ok := c.origins[name]; ok {
		return o
	}
	return "--" + name
}

// set gives flag f the values from the source origin, replacing what a
// lower source set.
func (c *Config) set(f *flag.Flag, origin string, values []string) error {
	resetList(f)
	for _, v := range values {
		if err := f.Value.Set(v); err != nil {
			return fmt.Errorf("%s: invalid value %q: %v", origin, v, err)
		}
	}
	c.origins[f.Name] = origin
	return nil
}

func resetList(f *flag.Flag) {
	if l, ok := f.Value.(listFlag); ok {
		*l.values = nil
	}
}

// splitList splits an environment variable's value at commas for a
// repeatable flag ("/static=assets,/media=uploads"); an empty value is an
// empty list.
func splitList(f *flag.Flag, v string) []string {
	if _, ok := f.Value.(listFlag); !ok {
		return []string{v}
	}
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// loadFile applies the TOML file at path: top-level keys named as the
// flags, with values of the flag's type (a repeatable flag takes an array
// of strings, or one string). An unknown key or a value of the wrong type
// is an error naming the key and its line.
func (c *Config) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %v", err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return fmt.Errorf("%s:%d:%d: %v", path, line, col, err)
		}
		return fmt.Errorf("%s: %v", path, err)
	}
	lines := keyLines(data)
	keys := make([]string, 0, len(doc))
	for k := range doc {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return lines[a] - lines[b] })
	for _, key := range keys {
		where := fmt.Sprintf("%s:%d: %s", path, lines[key], key)
		f := c.flags.Lookup(key)
		switch {
		case f == nil || key == "help" || key == "version":
			return fmt.Errorf("%s:%d: unknown key %q (the keys are the flags' names; see wsgo --help)", path, lines[key], key)
		case key == "config":
			return fmt.Errorf("%s: a config file cannot name another", where)
		}
		values, err := fileValues(f, doc[key])
		if err != nil {
			return fmt.Errorf("%s: %v", where, err)
		}
		if err := c.set(f, where, values); err != nil {
			return err
		}
	}
	return nil
}

// fileValues turns a TOML value into what f's Set parses, checking that it
// has the flag's type.
func fileValues(f *flag.Flag, v any) ([]string, error) {
	var want any
	if g, ok := f.Value.(flag.Getter); ok {
		want = g.Get()
	}
	switch want.(type) {
	case bool:
		if b, ok := v.(bool); ok {
			return []string{strconv.FormatBool(b)}, nil
		}
		return nil, fmt.Errorf("want true or false, not %s", describe(v))
	case int, int64, uint, uint64:
		if n, ok := v.(int64); ok {
			return []string{strconv.FormatInt(n, 10)}, nil
		}
		return nil, fmt.Errorf("want an integer, not %s", describe(v))
	case float64:
		switch n := v.(type) {
		case int64:
			return []string{strconv.FormatInt(n, 10)}, nil
		case float64:
			return []string{strconv.FormatFloat(n, 'g', -1, 64)}, nil
		}
		return nil, fmt.Errorf("want a number, not %s", describe(v))
	case []string:
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
		list, ok := v.([]any)
		values := make([]string, len(list))
		for i, e := range list {
			s, isString := e.(string)
			ok = ok && isString
			values[i] = s
		}
		if !ok {
			return nil, fmt.Errorf("want a string or an array of strings, not %s", describe(v))
		}
		return values, nil
	default: // strings, durations ("5s") and any other flag.Value
		if s, ok := v.(string); ok {
			return []string{s}, nil
		}
		return nil, fmt.Errorf("want a string, not %s", describe(v))
	}
}

// describe names a decoded TOML value's type, with the value, for an error.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", v)
	case int64:
		return fmt.Sprintf("the integer %d", v)
	case float64:
		return fmt.Sprintf("the number %v", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case time.Time, toml.LocalDate, toml.LocalDateTime, toml.LocalTime:
		return fmt.Sprintf("the date or time %v", v)
	}
	return fmt.Sprintf("%v", v)
}

// keyLines maps each top-level key of a TOML document (which must parse) to
// the line it is first set on: a key before any table header, or a table's
// name. The keys under a [table] are not top-level, so they are skipped.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	inTable := false
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			inTable = true
		case unstable.KeyValue:
			if inTable {
				continue
			}
		default:
			continue
		}
		key := e.Key()
		if !key.Next() {
			continue
		}
		k := key.Node()
		if _, seen := lines[string(k.Data)]; !seen {
			lines[string(k.Data)] = p.Shape(k.Raw).Start.Line
		}
	}
	return lines
}

// Args gives the settings as command-line flags, every one spelled out,
// which parse back to the same settings.
func (c *Config) Args() []string {
	var args []string
	c.flags.VisitAll(func(f *flag.Flag) {
		if commandLineOnly(f.Name) {
			return
		}
		if l, ok := f.Value.(listFlag); ok {
			for _, v := range *l.values {
				args = append(args, "--"+f.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	return args
}

// WorkerEnv is the environment of a worker process: environ without the
// variables that set flags, and with SettingsEnv holding c as flags (see
// Args), which Parse reads instead of the command line. So every worker
// process runs with exactly what the supervisor resolved, whatever the
// config file says by the time one starts. The settings go in the
// environment rather than on the command line because they may hold a
// secret (a key's passphrase) that was kept out of the command line, which
// every user can read in /proc, unlike the environment.
func (c *Config) WorkerEnv(environ []string) []string {
	names := map[string]bool{SettingsEnv: true}
	flagSet(&Config{}).VisitAll(func(f *flag.Flag) { names[EnvName(f.Name)] = true })
	env := slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return names[name]
	})
	settings, _ := json.Marshal(c.Args()) // strings always encode
	return append(env, SettingsEnv+"="+string(settings))
}

// workerArgs returns the settings SettingsEnv holds, if it is set, and
// clears it, so that the app's own subprocesses do not inherit it.
func workerArgs() ([]string, bool, error) {
	v, ok := os.LookupEnv(SettingsEnv)
	if !ok {
		return nil, false, nil
	}
	os.Unsetenv(SettingsEnv)
	var args []string
	if err := json.Unmarshal([]byte(v), &args); err != nil {
		return nil, true, fmt.Errorf("malformed %s: %v", SettingsEnv, err)
	}
	return args, true, nil
}
