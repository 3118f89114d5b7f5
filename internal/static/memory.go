package static

import (
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"sync"
	"time"
)

// smallFile is the largest file kept in memory. For a file this small the
// open, fstat, lseeks and close that sending it from disk takes cost more
// than copying its bytes into the socket; a larger one goes out with
// sendfile(2).
const smallFile = 64 << 10

// recheck is how long a file kept in memory is served without looking at
// the disk again, so a changed or deleted file is seen within it (nginx's
// open_file_cache_valid plays the same part, with 60 s).
const recheck = time.Second

// memory keeps small static files, with the headers that describe them,
// ready to send: a hit costs no system call but the write. It is bounded
// in bytes; when full, entries picked at random make room, which needs no
// bookkeeping on the hit path. A nil *memory keeps nothing.
type memory struct {
	limit int64
	mu    sync.RWMutex
	files map[memKey]*memGroup
	used  int64
}

type memKey struct {
	root *os.Root
	name string
}

// memGroup is one name's file and its precompressed siblings, loaded
// together so that a hit needs no look at the disk for Accept-Encoding.
type memGroup struct {
	file     memFile
	variants [len(precompressed)]*memFile // nil where no sibling exists
	loaded   time.Time
	size     int64 // what the group counts against the limit
}

// memFile is one file's bytes and headers. The header values are slices
// of length and capacity 1, shared by every response that sends them:
// net/http only reads them, and an append by anyone else copies.
type memFile struct {
	body                                    []byte
	modTime                                 time.Time
	etag, lastModified, length, contentType []string
}

// newMemory returns a memory of limit bytes, or nil when limit is 0.
func newMemory(limit int64) *memory {
	if limit <= 0 {
		return nil
	}
	return &memory{limit: limit, files: make(map[memKey]*memGroup)}
}

// get returns what memory holds for name under d, or nil. An entry older
// than recheck is dropped instead, so that the caller's miss reloads it.
func (m *memory) get(d dir, name string) *memGroup {
	if m == nil {
		return nil
	}
	key := memKey{d.root, name}
	m.mu.RLock()
	g := m.files[key]
	m.mu.RUnlock()
	if g == nil || time.Since(g.loaded) < recheck {
		return g
	}
	m.mu.Lock()
	if m.files[key] == g {
		delete(m.files, key)
		m.used -= g.size
	}
	m.mu.Unlock()
	return nil
}

// add reads f, just opened as name under d, and its siblings into memory
// if they are all small enough, and returns the group; nil when they are
// not, or when f cannot be read. f stays open and is the caller's.
func (m *memory) add(d dir, name string, f *os.File, info fs.FileInfo) *memGroup {
	if m == nil || info.Size() > smallFile {
		return nil
	}
	g := &memGroup{loaded: time.Now()}
	if !readSmall(&g.file, f, info, "") {
		return nil
	}
	g.file.contentType = []string{contentType(name)}
	g.size = int64(len(name)) + info.Size()
	if !hasCompressedSuffix(name) {
		for i, enc := range precompressed {
			sf, sinfo, ok := openRegular(d, name+enc.suffix)
			if !ok {
				continue
			}
			v := &memFile{contentType: g.file.contentType}
			ok = sinfo.Size() <= smallFile && readSmall(v, sf, sinfo, enc.token)
			sf.Close()
			if !ok {
				return nil // the sibling is served from disk, so the group is too
			}
			g.variants[i] = v
			g.size += sinfo.Size()
		}
	}
	if g.size > m.limit {
		return nil
	}
	key := memKey{d.root, name}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.files[key]; old != nil {
		m.used -= old.size
		delete(m.files, key)
	}
	for k, victim := range m.files { // map order is random enough to evict by
		if m.used+g.size <= m.limit {
			break
		}
		m.used -= victim.size
		delete(m.files, k)
	}
	m.files[key] = g
	m.used += g.size
	return g
}

// readSmall fills v with f's bytes and the headers for them, sent with
// Content-Encoding encoding ("" for none).
func readSmall(v *memFile, f *os.File, info fs.FileInfo, encoding string) bool {
	v.body = make([]byte, info.Size())
	// A file that shrank since its stat is sent from disk instead.
	if n, _ := f.ReadAt(v.body, 0); n != len(v.body) {
		return false
	}
	v.modTime = info.ModTime()
	v.etag = []string{etag(info, encoding)}
	v.length = []string{strconv.Itoa(len(v.body))}
	if lm := lastModified(v.modTime); lm != "" {
		v.lastModified = []string{lm}
	}
	return true
}

// lastModified is the Last-Modified value http.ServeContent sends for
// modTime: none for the zero time or the Unix epoch.
func lastModified(modTime time.Time) string {
	if modTime.IsZero() || modTime.Equal(time.Unix(0, 0)) {
		return ""
	}
	return modTime.UTC().Format(http.TimeFormat)
}

// contentType is the Content-Type of a file by its name's extension;
// files are never sniffed.
func contentType(name string) string {
	if ctype := mime.TypeByExtension(path.Ext(name)); ctype != "" {
		return ctype
	}
	return "application/octet-stream"
}
