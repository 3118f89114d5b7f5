package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// env is a fake environment for Load.
func env(kv ...string) func(string) (string, bool) {
	m := map[string]string{}
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		m[k] = v
	}
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// configFile writes a TOML file for a test and returns its path.
func configFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wsgo.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	path := configFile(t, `
module = "fromfile"
workers = 3
processes = 2
queue-size = 7
static-map = ["/=webroot", "/media=uploads"]
pythonpath = "one"
reload = true
`)
	c, err := Load([]string{"--config", path, "--workers", "5", "--pythonpath", "a", "--pythonpath", "b"},
		env("WSGO_WORKERS=4", "WSGO_PROCESSES=6", "WSGO_STATIC_MAP=/s=static", "WSGO_BIN=/elsewhere",
			"WSGO_WORKER=1:1:1"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"workers: flag over env and file", c.Workers, 5},
		{"processes: env over file", c.Processes, 6},
		{"queue-size: file over default", c.QueueSize, 7},
		{"module from the file", c.Module, "fromfile"},
		{"reload from the file", c.Reload, true},
		{"http-socket: default", c.HTTPSocket, "127.0.0.1:8000"},
		{"static-map: env replaces the file's list", strings.Join(c.StaticMap, " "), "/s=static"},
		{"pythonpath: flags replace the file's", strings.Join(c.PythonPath, " "), "a b"},
		{"config file", c.ConfigFile, path},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestConfigFromEnvironment(t *testing.T) {
	path := configFile(t, "module = \"app\"\nworkers = 2\n")
	c, err := Load(nil, env("WSGO_CONFIG="+path, "WSGO_TRUSTED_PROXIES=private,10.0.0.0/8", "WSGO_SCHED_BATCH=false"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Module != "app" || c.Workers != 2 || c.SchedBatch || strings.Join(c.TrustedProxies, " ") != "private 10.0.0.0/8" {
		t.Errorf("got module=%q workers=%d sched-batch=%v trusted-proxies=%q", c.Module, c.Workers, c.SchedBatch, c.TrustedProxies)
	}
	// A --config flag wins over WSGO_CONFIG.
	other := configFile(t, "module = \"other\"\n")
	if c, err := Load([]string{"--config=" + other}, env("WSGO_CONFIG="+path), &bytes.Buffer{}); err != nil || c.Module != "other" {
		t.Errorf("--config over WSGO_CONFIG: %+v, %v", c, err)
	}
}

// TestBadSettingMessages: each bad key or value stops Parse with a message
// naming the setting and, for the file, its line.
func TestBadSettingMessages(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string   // written to wsgo.toml and passed with --config, unless empty
		env  []string // KEY=VALUE
		args []string
		want string // the whole message, with FILE for the file's path
	}{
		{name: "unknown key", file: "module = \"app\"\n\nwokers = 4\n",
			want: `FILE:3: unknown key "wokers" (the keys are the flags' names; see wsgo --help)`},
		{name: "table", file: "module = \"app\"\n[server]\nworkers = 4\n",
			want: `FILE:2: unknown key "server" (the keys are the flags' names; see wsgo --help)`},
		{name: "help is no key", file: "help = true\n",
			want: `FILE:1: unknown key "help" (the keys are the flags' names; see wsgo --help)`},
		{name: "config in a config file", file: "module = \"app\"\nconfig = \"other.toml\"\n",
			want: `FILE:2: config: a config file cannot name another`},
		{name: "string for an integer", file: "module = \"app\"\nworkers = \"four\"\n",
			want: `FILE:2: workers: want an integer, not the string "four"`},
		{name: "float for an integer", file: "module = \"app\"\n  processes   =  1.5\n",
			want: `FILE:2: processes: want an integer, not the number 1.5`},
		{name: "integer for a string", file: "module = 42\n",
			want: `FILE:1: module: want a string, not the integer 42`},
		{name: "string for a boolean", file: "module = \"app\"\nreload = \"yes\"\n",
			want: `FILE:2: reload: want true or false, not the string "yes"`},
		{name: "numbers for a list", file: "module = \"app\"\nstatic-map = [1, 2]\n",
			want: `FILE:2: static-map: want a string or an array of strings, not an array`},
		{name: "table for a list", file: "module = \"app\"\nstatic-map = {a = 1}\n",
			want: `FILE:2: static-map: want a string or an array of strings, not a table`},
		{name: "out of range in the file", file: "module = \"app\"\n\n# comment\nworkers = 0\n",
			want: `FILE:4: workers must be at least 1, not 0`},
		{name: "negative in the file", file: "module = \"app\"\n\"max-age\" = -5\n",
			want: `FILE:2: max-age must not be negative, not -5`},
		{name: "bad log format in the file", file: "module = \"app\"\nlog-format = \"xml\"\n",
			want: `FILE:2: log-format must be combined, json or off, not "xml"`},
		{name: "module missing everywhere", file: "workers = 2\n",
			want: `--module is required, e.g. --module wsgi_app`},
		{name: "syntax error", file: "module = \"app\"\nworkers = = 4\n",
			want: `FILE:2:11: toml: unexpected character U+003D '=' at start of value`},
		{name: "duplicate key", file: "module = \"app\"\nworkers = 4\nworkers = 5\n",
			want: `FILE:3:1: toml: key workers is already defined`},
		{name: "missing file", args: []string{"--config", "/nonexistent/wsgo.toml"},
			want: `--config: open /nonexistent/wsgo.toml: no such file or directory`},
		{name: "bad integer in the environment", env: []string{"WSGO_MODULE=app", "WSGO_WORKERS=many"},
			want: `WSGO_WORKERS: invalid value "many": parse error`},
		{name: "bad boolean in the environment", env: []string{"WSGO_MODULE=app", "WSGO_RELOAD=perhaps"},
			want: `WSGO_RELOAD: invalid value "perhaps": parse error`},
		{name: "out of range in the environment", env: []string{"WSGO_MODULE=app", "WSGO_QUEUE_SIZE=0"},
			want: `WSGO_QUEUE_SIZE must be at least 1, not 0`},
		{name: "bad stats socket in the environment", env: []string{"WSGO_MODULE=app", "WSGO_STATS_SOCKET=9100"},
			want: `WSGO_STATS_SOCKET must be HOST:PORT, not "9100"`},
		{name: "out of range on the command line", args: []string{"--module", "app", "--processes", "0"},
			want: `--processes must be at least 1, not 0`},
		{name: "a flag's value beats the file's bad one only if the file's has the right type",
			file: "module = \"app\"\nworkers = \"x\"\n", args: []string{"--workers", "2"},
			want: `FILE:2: workers: want an integer, not the string "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			path := ""
			if tc.file != "" {
				path = configFile(t, tc.file)
				args = append([]string{"--config", path}, args...)
			}
			_, err := Load(args, env(tc.env...), &bytes.Buffer{})
			want := strings.ReplaceAll(tc.want, "FILE", path)
			if err == nil || err.Error() != want {
				t.Errorf("error = %v\nwant    %s", err, want)
			}
		})
	}
}

func TestFileOverriddenByFlagIsStillCheckedButYields(t *testing.T) {
	path := configFile(t, "module = \"app\"\nworkers = 0\n")
	// The file's 0 is replaced by the flag before the range checks.
	if c, err := Load([]string{"--config", path, "--workers", "2"}, env(), &bytes.Buffer{}); err != nil || c.Workers != 2 {
		t.Errorf("got %+v, %v", c, err)
	}
}

// TestArgsRoundTrip: what a worker process is given parses back to the
// same settings, whatever the environment then says.
func TestArgsRoundTrip(t *testing.T) {
	path := configFile(t, "module = \"app:make\"\nstatic-map = [\"/=web root\", \"/a=b\"]\nreload = true\nlog-format = \"json\"\n")
	c, err := Load([]string{"--config", path, "--workers", "3", "--max-body-size", "99", "--chdir", ""},
		env("WSGO_SCHED_BATCH=false", "WSGO_STATS_SOCKET=127.0.0.1:0"), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	args := c.Args()
	if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--config") }) {
		t.Errorf("worker args name the config file: %q", args)
	}
	again, err := Load(args, env("WSGO_WORKERS=9", "WSGO_STATIC_MAP=/x=y"), &bytes.Buffer{})
	if err != nil {
		t.Fatalf("Load(%q): %v", args, err)
	}
	if got, want := again.Args(), args; !slices.Equal(got, want) {
		t.Errorf("round trip:\n got %q\nwant %q", got, want)
	}
	if again.Workers != 3 || again.MaxBodySize != 99 || !again.Reload || again.SchedBatch ||
		again.LogFormat != "json" || again.StatsSocket != "127.0.0.1:0" || strings.Join(again.StaticMap, "|") != "/=web root|/a=b" {
		t.Errorf("round trip lost settings: %q", again.Args())
	}
}

// TestWorkerEnv: a worker process's environment has the settings as the
// supervisor resolved them, in place of the variables that set flags, and
// Parse takes them from there (once).
func TestWorkerEnv(t *testing.T) {
	c, err := Load([]string{"--module", "app", "--workers", "3", "--static-map", "/=web"}, env(), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	in := []string{"PATH=/bin", "WSGO_WORKERS=4", "WSGO_CONFIG=x.toml", "WSGO_BIN=/x", "WSGO_WORKER=1:1:1:0",
		"WSGO_HTTP_SOCKET=:1", "WSGO_SETTINGS=stale"}
	got := c.WorkerEnv(in)
	settings, _ := json.Marshal(c.Args())
	want := []string{"PATH=/bin", "WSGO_BIN=/x", "WSGO_WORKER=1:1:1:0", "WSGO_SETTINGS=" + string(settings)}
	if !slices.Equal(got, want) {
		t.Fatalf("WorkerEnv =\n%q\nwant\n%q", got, want)
	}
	t.Setenv(SettingsEnv, string(settings))
	t.Setenv("WSGO_WORKERS", "9")
	w, err := Parse([]string{"--module", "ignored"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if w.Module != "app" || w.Workers != 3 || !slices.Equal(w.StaticMap, []string{"/=web"}) {
		t.Errorf("worker's settings: module %q, workers %d, static-map %q", w.Module, w.Workers, w.StaticMap)
	}
	if _, set := os.LookupEnv(SettingsEnv); set {
		t.Errorf("%s is still set, for the app to see", SettingsEnv)
	}
	t.Setenv(SettingsEnv, "[not json")
	if _, err := Parse(nil, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "malformed WSGO_SETTINGS") {
		t.Errorf("Parse with a malformed %s: %v", SettingsEnv, err)
	}
}

// TestEnvNamesAreTheFlags: every flag has its variable, and none collides
// with the supervisor's own WSGO_WORKER (internal/supervisor/link.go) or
// SettingsEnv.
func TestEnvNamesAreTheFlags(t *testing.T) {
	if EnvName("http-socket") != "WSGO_HTTP_SOCKET" || EnvName("workers") != "WSGO_WORKERS" {
		t.Errorf("EnvName: %s, %s", EnvName("http-socket"), EnvName("workers"))
	}
	flagSet(&Config{}).VisitAll(func(f *flag.Flag) {
		if n := EnvName(f.Name); n == "WSGO_WORKER" || n == SettingsEnv {
			t.Errorf("flag --%s would be set by the supervisor's %s", f.Name, n)
		}
	})
}

func TestKeyLines(t *testing.T) {
	doc := "# settings\nworkers = 4\n\n  \"http-socket\" = \"x\"\nstatic-map = [\n  \"/=a\",\n]\na.b = 1\n[table]\nmodule = \"inner\"\n[[arr]]\n"
	got := keyLines([]byte(doc))
	want := map[string]int{"workers": 2, "http-socket": 4, "static-map": 5, "a": 8, "table": 9, "arr": 11}
	if len(got) != len(want) {
		t.Errorf("keyLines = %v, want %v", got, want)
	}
	for k, line := range want {
		if got[k] != line {
			t.Errorf("line of %q = %d, want %d", k, got[k], line)
		}
	}
}
