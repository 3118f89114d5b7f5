package supervisor

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maxWatched bounds how many files one scan looks at, so that pointing
// --reload at a huge tree costs a bounded amount each second.
const maxWatched = 20000

// WatchPython returns a Config.Watch for --reload: it reports true when a
// .py file under dirs was added, removed or modified since the previous
// call. Hidden directories, __pycache__ and virtualenvs are skipped.
func WatchPython(dirs []string) func() bool {
	last := scanPython(dirs)
	return func() bool {
		now := scanPython(dirs)
		changed := now != last
		last = now
		return changed
	}
}

// scan summarises the .py files under dirs: their count and the newest
// modification time, plus the sum of their sizes to notice an edit within
// the same second.
type scan struct {
	files  int
	newest time.Time
	bytes  int64
}

func scanPython(dirs []string) scan {
	var s scan
	for _, dir := range dirs {
		_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || s.files >= maxWatched {
				return filepath.SkipDir
			}
			name := d.Name()
			if d.IsDir() {
				if path != dir && (strings.HasPrefix(name, ".") || name == "__pycache__" || name == "node_modules" ||
					isVirtualenv(path)) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(name, ".py") {
				return nil
			}
			if info, err := d.Info(); err == nil {
				s.files++
				s.bytes += info.Size()
				if info.ModTime().After(s.newest) {
					s.newest = info.ModTime()
				}
			}
			return nil
		})
	}
	return s
}

func isVirtualenv(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "pyvenv.cfg"))
	return err == nil
}
