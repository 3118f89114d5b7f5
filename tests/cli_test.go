package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	res := runWsgo(t, "--version")
	if res.ExitCode != 0 {
		t.Fatalf("--version exited %d; stderr:\n%s", res.ExitCode, res.Stderr)
	}
	out := res.Stdout + res.Stderr
	if !regexp.MustCompile(`(?m)^wsgo \S`).MatchString(out) {
		t.Fatalf("--version printed no line starting %q:\n%s", "wsgo ", out)
	}
}

func TestHelpListsEveryFlagWithDefault(t *testing.T) {
	t.Parallel()
	res := runWsgo(t, "--help")
	if res.ExitCode != 0 {
		t.Fatalf("--help exited %d; stderr:\n%s", res.ExitCode, res.Stderr)
	}
	help := res.Stdout + res.Stderr

	// Split the help into entries: a line that starts (after indentation)
	// with a dash opens an entry; the lines below it that do not belong to it.
	entries := map[string]string{}
	var current string
	entryRE := regexp.MustCompile(`^\s*--?([a-z][a-z-]*)\b`)
	for _, line := range strings.Split(help, "\n") {
		if m := entryRE.FindStringSubmatch(line); m != nil {
			current = m[1]
			entries[current] += line + "\n"
		} else if current != "" {
			entries[current] += line + "\n"
		}
	}
	valueFlags := []string{"module", "http-socket", "workers", "chdir", "pythonpath", "virtualenv", "max-body-size"}
	for _, name := range append(valueFlags, "version", "help") {
		if _, ok := entries[name]; !ok {
			t.Errorf("--help does not list --%s", name)
		}
	}
	for _, name := range valueFlags {
		if e, ok := entries[name]; ok && !strings.Contains(strings.ToLower(e), "default") {
			t.Errorf("--help entry for --%s does not show its default:\n%s", name, e)
		}
	}
	if t.Failed() {
		t.Logf("--help output:\n%s", help)
	}
}

func TestCallableSelection(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		module, want string
	}{
		{"callables", "callable application"}, // default name
		{"callables:application", "callable application"},
		{"callables:app", "callable app"},
		{"callables:other", "callable other"},
		{"apponly", "fallback app"}, // no `application`: falls back to `app`
	} {
		t.Run(tc.module, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, tc.module)
			r := get(t, s.URL+"/")
			wantStatus(t, r, 200)
			if r.String() != tc.want {
				t.Fatalf("body = %q, want %q", r.Body, tc.want)
			}
		})
	}
}

func TestPythonPath(t *testing.T) {
	t.Parallel()
	one, two := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(one, "ppone.py"), "VALUE = 'from-dir-one'\n")
	writeFile(t, filepath.Join(two, "pptwo.py"), "VALUE = 'from-dir-two'\n")
	s := startServer(t, "pathapp", "--pythonpath", one, "--pythonpath", two)
	r := get(t, s.URL+"/")
	wantStatus(t, r, 200)
	if r.String() != "from-dir-one from-dir-two" {
		t.Fatalf("body = %q", r.Body)
	}
}

func TestVirtualenv(t *testing.T) {
	t.Parallel()
	venv := filepath.Join(t.TempDir(), "venv")
	out, err := exec.Command("/usr/bin/python3", "-m", "venv", "--without-pip", venv).CombinedOutput()
	if err != nil {
		t.Fatalf("creating a virtualenv with /usr/bin/python3 -m venv --without-pip failed: %v\n%s", err, out)
	}
	site := filepath.Join(venv, "lib", "python3.11", "site-packages")
	if _, err := os.Stat(site); err != nil {
		t.Fatalf("virtualenv has no %s: %v", site, err)
	}
	writeFile(t, filepath.Join(site, "venvonly.py"), "VALUE = 'imported from the virtualenv'\n")

	t.Run("flag", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, "venvapp", "--virtualenv", venv)
		r := get(t, s.URL+"/")
		wantStatus(t, r, 200)
		if r.String() != "imported from the virtualenv" {
			t.Fatalf("body = %q", r.Body)
		}
	})
	t.Run("VIRTUAL_ENV", func(t *testing.T) {
		t.Parallel()
		s := startServerEnv(t, []string{"VIRTUAL_ENV=" + venv}, "venvapp")
		r := get(t, s.URL+"/")
		wantStatus(t, r, 200)
		if r.String() != "imported from the virtualenv" {
			t.Fatalf("body = %q", r.Body)
		}
	})
}

func TestStartupFailures(t *testing.T) {
	t.Parallel()
	td := testdataDir(t)
	for _, tc := range []struct {
		name   string
		module string
		// every string must appear in stderr
		want []string
		// one line of stderr must contain all of these
		wantLine []string
	}{
		{
			name:     "import error",
			module:   "brokenapp",
			want:     []string{"Traceback (most recent call last)", "ModuleNotFoundError", "wsgo_test_no_such_dependency"},
			wantLine: []string{"could not import", "brokenapp", "sys.path"},
		},
		{
			name:     "no such module",
			module:   "wsgo_no_such_module",
			want:     []string{"Traceback (most recent call last)"},
			wantLine: []string{"could not import", "wsgo_no_such_module", "sys.path"},
		},
		{
			name:   "missing named callable",
			module: "callables:nonexistent",
			want:   []string{"nonexistent"},
		},
		{
			name:   "neither application nor app",
			module: "nocallable",
			want:   []string{"application"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := runWsgo(t, "--module", tc.module, "--chdir", td, "--http-socket", "127.0.0.1:0")
			if res.ExitCode == 0 {
				t.Errorf("exit code 0, want non-zero")
			}
			if strings.Contains(res.Stderr, "wsgo: listening on") {
				t.Errorf("server announced it was listening despite the failure")
			}
			for _, w := range tc.want {
				if !strings.Contains(res.Stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if len(tc.wantLine) > 0 && !hasLineWithAll(res.Stderr, tc.wantLine) {
				t.Errorf("no stderr line contains all of %q", tc.wantLine)
			}
			if t.Failed() {
				t.Logf("stderr:\n%s", tail(res.Stderr))
			}
		})
	}
}

func hasLineWithAll(text string, parts []string) bool {
	for _, line := range strings.Split(text, "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
