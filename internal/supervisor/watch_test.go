package supervisor

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchPython(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("app.py", "x = 1\n")
	write("venv/pyvenv.cfg", "home = /usr\n")
	changed := WatchPython([]string{dir})

	steps := []struct {
		name string
		do   func()
		want bool
	}{
		{"nothing", func() {}, false},
		{"edit of a module", func() { write("app.py", "x = 22\n") }, true},
		{"new module in a package", func() { write("pkg/mod.py", "") }, true},
		{"a file that is not Python", func() { write("notes.txt", "hello") }, false},
		{"inside a virtualenv", func() { write("venv/lib/site.py", "") }, false},
		{"inside __pycache__", func() { write("__pycache__/app.py", "") }, false},
		{"inside a hidden directory", func() { write(".git/hook.py", "") }, false},
		{"removal", func() {
			if err := os.Remove(filepath.Join(dir, "pkg/mod.py")); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"same size, newer time", func() {
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(filepath.Join(dir, "app.py"), later, later); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, step := range steps {
		step.do()
		if got := changed(); got != step.want {
			t.Errorf("%s: changed() = %v, want %v", step.name, got, step.want)
		}
	}
}
