package static

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// load opens name under d and offers it to m, as a miss does.
func load(t *testing.T, m *memory, d dir, name string) *memGroup {
	t.Helper()
	f, info, ok := openRegular(d, name)
	if !ok {
		t.Fatalf("cannot open %s", name)
	}
	defer f.Close()
	return m.add(d, name, f, info)
}

func TestMemoryKeepsSmallFilesWithinItsLimit(t *testing.T) {
	tmp := t.TempDir()
	write := func(name string, size int) {
		if err := os.WriteFile(filepath.Join(tmp, name), bytes.Repeat([]byte{'x'}, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		write("f"+strconv.Itoa(i), 30_000)
	}
	write("big", smallFile+1)
	write("css", 1000)
	write("css.br", 300)
	d, err := openDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	m := newMemory(100_000)

	if g := load(t, m, d, "big"); g != nil {
		t.Errorf("a file over %d bytes was kept", smallFile)
	}
	for i := range 5 {
		name := "f" + strconv.Itoa(i)
		if g := load(t, m, d, name); g == nil || len(g.file.body) != 30_000 {
			t.Fatalf("%s was not kept", name)
		}
		if m.get(d, name) == nil {
			t.Errorf("%s not found right after it was kept", name)
		}
		if m.used > m.limit {
			t.Errorf("after %s: %d bytes used, over the limit of %d", name, m.used, m.limit)
		}
	}
	if len(m.files) != 3 {
		t.Errorf("%d files kept in 100,000 bytes, want 3 of 30,000", len(m.files))
	}

	g := load(t, m, d, "css")
	if g == nil || g.variants[0] == nil || len(g.variants[0].body) != 300 || g.variants[1] != nil {
		t.Fatalf("css and its brotli sibling were not kept together: %+v", g)
	}
	if got := g.variants[0].etag[0]; got == g.file.etag[0] {
		t.Errorf("the sibling shares the file's ETag %s", got)
	}

	g.loaded = time.Now().Add(-recheck)
	if m.get(d, "css") != nil {
		t.Error("an entry older than recheck was still served")
	}
	if _, ok := m.files[memKey{d.root, "css"}]; ok {
		t.Error("an entry older than recheck stayed in memory")
	}
}

func TestNoMemory(t *testing.T) {
	var m *memory = newMemory(0)
	if m.get(dir{}, "x") != nil {
		t.Error("a memory of 0 bytes found a file")
	}
}
