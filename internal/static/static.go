// Package static serves files from the directories mapped with
// --static-map, before a request reaches the scheduler, and the files an
// app hands back with X-Sendfile or X-Accel-Redirect.
//
// It owns path resolution and containment: every file is opened through an
// os.Root, so that neither "..", encoded separators nor a symlink can reach
// outside its directory. It never calls Python; a request it cannot serve
// falls through to the app (the front decides what happens next).
package static

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Server resolves request paths and hand-offs to files and sends them.
// Its zero value serves nothing.
type Server struct {
	mounts []mount // longest prefix first
	// sendfileRoots are directories only reachable by hand-off.
	sendfileRoots []dir
	// cacheControl and immutable are the Cache-Control values for mapped
	// files, the second for names that carry a content hash.
	cacheControl, immutable []string
	memory                  *memory // small files kept ready to send
}

// mount is one --static-map entry.
type mount struct {
	prefix string // without a trailing slash; "" for "/"
	dir
}

// dir is an opened directory and its absolute path.
type dir struct {
	root *os.Root
	path string
}

func openDir(name string) (dir, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return dir{}, err
	}
	root, err := os.OpenRoot(abs)
	return dir{root: root, path: abs}, err
}

// New opens the directories of maps ("PREFIX=DIR") and sendfileRoots.
// maxAge is the Cache-Control max-age, in seconds, of mapped files;
// memoryBytes bounds the small files kept in memory (0: none).
func New(maps, sendfileRoots []string, maxAge int, memoryBytes int64) (*Server, error) {
	s := &Server{
		cacheControl: []string{fmt.Sprintf("public, max-age=%d", maxAge)},
		immutable:    []string{fmt.Sprintf("public, max-age=%d, immutable", maxAge)},
		memory:       newMemory(memoryBytes),
	}
	for _, m := range maps {
		prefix, name, ok := strings.Cut(m, "=")
		if !ok || !strings.HasPrefix(prefix, "/") || name == "" {
			return nil, fmt.Errorf("--static-map %q: want PREFIX=DIR with PREFIX starting with /", m)
		}
		d, err := openDir(name)
		if err != nil {
			return nil, fmt.Errorf("--static-map %q: %w", m, err)
		}
		s.mounts = append(s.mounts, mount{prefix: strings.TrimRight(prefix, "/"), dir: d})
	}
	sort.SliceStable(s.mounts, func(i, j int) bool { return len(s.mounts[i].prefix) > len(s.mounts[j].prefix) })
	for _, name := range sendfileRoots {
		d, err := openDir(name)
		if err != nil {
			return nil, fmt.Errorf("--sendfile-root: %w", err)
		}
		s.sendfileRoots = append(s.sendfileRoots, d)
	}
	return s, nil
}

// Result is what was sent, for the access log.
type Result struct {
	Status  int
	Written int64
}

// Serve sends the file that r names under the longest matching
// --static-map prefix, and reports whether it did. Only GET and HEAD are
// served; anything else, and any path that does not name a regular,
// visible file inside the mapped directory, is left to the app.
func (s *Server) Serve(w http.ResponseWriter, r *http.Request) (Result, bool) {
	if len(s.mounts) == 0 || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return Result{}, false
	}
	root, name, ok := s.resolveURI(r.URL.Path)
	if !ok {
		return Result{}, false
	}
	src, ok := s.open(root, name, r)
	if !ok {
		return Result{}, false
	}
	h := w.Header()
	if hasContentHash(path.Base(name)) {
		h["Cache-Control"] = s.immutable
	} else {
		h["Cache-Control"] = s.cacheControl
	}
	return s.send(w, r, name, src), true
}

// ServeHandOff sends the file an app named with X-Sendfile (a file path,
// inside a mapped directory or a --sendfile-root) or X-Accel-Redirect (a
// URI path, resolved through the maps, then under each --sendfile-root).
// The app's headers are already in w.Header(). A file that is missing or
// outside every root gets 404: the hand-off never reaches an arbitrary
// path.
func (s *Server) ServeHandOff(w http.ResponseWriter, r *http.Request, target string, uri bool) (Result, error) {
	root, name, f, info, ok := s.openHandOff(target, uri)
	if !ok {
		h := w.Header()
		for k := range h {
			delete(h, k) // the app's headers describe the file, not this error
		}
		http.Error(w, "404 page not found", http.StatusNotFound)
		return Result{Status: http.StatusNotFound}, fmt.Errorf("hand-off to %q: no such file inside a --static-map directory or --sendfile-root", target)
	}
	return s.send(w, r, name, s.opened(root, name, f, info, r)), nil
}

// resolveURI finds the mount for a URI path and the file name relative to
// its directory.
func (s *Server) resolveURI(p string) (dir, string, bool) {
	for _, m := range s.mounts {
		rest, found := strings.CutPrefix(p, m.prefix)
		if !found || (rest != "" && rest[0] != '/') {
			continue // "/media" must not match "/mediafoo"
		}
		name, ok := localName(strings.TrimPrefix(rest, "/"))
		return m.dir, name, ok
	}
	return dir{}, "", false
}

// openHandOff opens the file a hand-off names: for a URI, the file under
// the mount it falls in, else under the first --sendfile-root that has it;
// for a file path (relative ones are from the working directory), the
// file in the first directory that contains the path.
func (s *Server) openHandOff(target string, uri bool) (dir, string, *os.File, fs.FileInfo, bool) {
	if uri {
		if root, name, ok := s.resolveURI(target); ok {
			f, info, ok := openRegular(root, name)
			return root, name, f, info, ok
		}
	}
	abs, err := filepath.Abs(target)
	if err != nil {
		return dir{}, "", nil, nil, false
	}
	dirs := s.sendfileRoots
	if !uri {
		dirs = make([]dir, 0, len(s.mounts)+len(s.sendfileRoots))
		for _, m := range s.mounts {
			dirs = append(dirs, m.dir)
		}
		dirs = append(dirs, s.sendfileRoots...)
	}
	for _, d := range dirs {
		var name string
		if uri {
			name = strings.TrimPrefix(target, "/")
		} else if rel, err := filepath.Rel(d.path, abs); err == nil {
			name = filepath.ToSlash(rel)
		}
		if name, ok := localName(name); ok {
			if f, info, ok := openRegular(d, name); ok {
				return d, name, f, info, true
			}
		}
	}
	return dir{}, "", nil, nil, false
}

// localName checks a slash-separated name relative to a root. It refuses,
// rather than cleans, anything unusual: empty, "." and ".." segments,
// hidden files, backslashes and NUL bytes. os.Root keeps symlinks inside
// the directory; this keeps out what a static file never needs.
func localName(name string) (string, bool) {
	if name == "" || len(name) > 4096 || strings.ContainsAny(name, "\\\x00") {
		return "", false
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg[0] == '.' {
			return "", false
		}
	}
	return name, true
}

// openRegular opens name under d if it is a regular file.
//
// os.Root refuses every absolute symlink, even one that points back into
// the directory, which the spec allows. So when the open fails for a reason
// other than a missing file, the link is resolved and, if it lands inside
// the directory, the resolved name is opened, again through os.Root: the
// file served is inside whatever the resolution saw.
func openRegular(d dir, name string) (*os.File, fs.FileInfo, bool) {
	f, err := d.root.Open(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		if resolved, rerr := filepath.EvalSymlinks(filepath.Join(d.path, name)); rerr == nil {
			if rel, rerr := filepath.Rel(d.path, resolved); rerr == nil && filepath.IsLocal(rel) {
				f, err = d.root.Open(rel)
			}
		}
	}
	if err != nil {
		return nil, nil, false
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, nil, false
	}
	return f, info, true
}

// source is what answers a request for a file: the bytes kept in memory,
// or the open file on disk, in the encoding the client accepts.
type source struct {
	mem  *memFile
	f    *os.File
	info fs.FileInfo
	enc  *encoding // nil for the file itself
	vary bool      // the choice depended on Accept-Encoding
}

// open finds the file name under d, in memory or on disk.
func (s *Server) open(d dir, name string, r *http.Request) (source, bool) {
	if g := s.memory.get(d, name); g != nil {
		return g.choose(r, name), true
	}
	f, info, ok := openRegular(d, name)
	if !ok {
		return source{}, false
	}
	return s.opened(d, name, f, info, r), true
}

// opened makes a source of f, just opened as name under d: kept in memory
// if it is small, else the file itself or the sibling the client accepts.
func (s *Server) opened(d dir, name string, f *os.File, info fs.FileInfo, r *http.Request) source {
	if g := s.memory.add(d, name, f, info); g != nil {
		f.Close()
		return g.choose(r, name)
	}
	src := source{f: f, info: info}
	src.enc, src.vary = negotiate(r, name, func(enc *encoding) bool {
		cf, cinfo, ok := openRegular(d, name+enc.suffix)
		if ok {
			src.f.Close()
			src.f, src.info = cf, cinfo
		}
		return ok
	})
	return src
}

// choose picks the file of g that the client accepts.
func (g *memGroup) choose(r *http.Request, name string) source {
	enc, vary := negotiate(r, name, func(enc *encoding) bool { return g.variants[enc.index] != nil })
	if enc != nil {
		return source{mem: g.variants[enc.index], enc: enc, vary: vary}
	}
	return source{mem: &g.file, vary: vary}
}

// negotiate returns the precompressed sibling of name to send, nil for
// name itself, and whether the choice depends on Accept-Encoding. exists
// says whether a sibling is there (and may open it).
func negotiate(r *http.Request, name string, exists func(*encoding) bool) (*encoding, bool) {
	accept := r.Header.Get("Accept-Encoding")
	if accept == "" || hasCompressedSuffix(name) {
		return nil, false
	}
	for i := range precompressed {
		if enc := &precompressed[i]; accepts(accept, enc.token) && exists(enc) {
			return enc, true
		}
	}
	return nil, true
}

// send writes src with its validators. A plain GET or HEAD of a file in
// memory is answered here; http.ServeContent answers conditional and range
// requests, and copies a file from disk with sendfile(2).
func (s *Server) send(w http.ResponseWriter, r *http.Request, name string, src source) Result {
	h := w.Header()
	if _, ok := h["Content-Type"]; !ok {
		if src.mem != nil {
			h["Content-Type"] = src.mem.contentType
		} else {
			h["Content-Type"] = []string{contentType(name)}
		}
	}
	if src.vary {
		h.Add("Vary", "Accept-Encoding")
	}
	if src.enc != nil {
		h["Content-Encoding"] = src.enc.header
	}
	if m := src.mem; m != nil {
		h["Etag"] = m.etag
		if !conditional(r) {
			return sendWhole(w, r, m)
		}
		return serveContent(w, r, m.modTime, bytes.NewReader(m.body))
	}
	defer src.f.Close()
	token := ""
	if src.enc != nil {
		token = src.enc.token
	}
	h["Etag"] = []string{etag(src.info, token)}
	return serveContent(w, r, src.info.ModTime(), src.f)
}

// serveContent answers r with http.ServeContent, noting what it sent.
func serveContent(w http.ResponseWriter, r *http.Request, modTime time.Time, content io.ReadSeeker) Result {
	cw := &countingWriter{ResponseWriter: w}
	http.ServeContent(cw, r, "", modTime, content)
	return Result{Status: cw.status, Written: cw.written}
}

// sendWhole answers a request for all of m, unconditionally, with the
// headers http.ServeContent would send (and Content-Length even when the
// body is precompressed, which it leaves out).
func sendWhole(w http.ResponseWriter, r *http.Request, m *memFile) Result {
	h := w.Header()
	if m.lastModified != nil {
		h["Last-Modified"] = m.lastModified
	}
	h["Accept-Ranges"] = acceptRanges
	h["Content-Length"] = m.length
	w.WriteHeader(http.StatusOK)
	var n int
	if r.Method != http.MethodHead {
		n, _ = w.Write(m.body)
	}
	return Result{Status: http.StatusOK, Written: int64(n)}
}

var acceptRanges = []string{"bytes"}

// conditional reports whether r asks for part of a file, or for the file
// only on a condition.
func conditional(r *http.Request) bool {
	for _, name := range conditionalHeaders {
		if _, ok := r.Header[name]; ok {
			return true
		}
	}
	return false
}

var conditionalHeaders = []string{"Range", "If-Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"}

// encoding is a precompressed sibling's Content-Encoding and file suffix.
type encoding struct {
	token, suffix string
	header        []string // token, as a header value
	index         int      // in precompressed
}

// precompressed lists the sibling files tried, best first.
var precompressed = [...]encoding{
	{token: "br", suffix: ".br", header: []string{"br"}, index: 0},
	{token: "gzip", suffix: ".gz", header: []string{"gzip"}, index: 1},
}

func hasCompressedSuffix(name string) bool {
	for _, enc := range precompressed {
		if strings.HasSuffix(name, enc.suffix) {
			return true
		}
	}
	return false
}

// etag is a strong validator from the file's modification time and size,
// distinct for each encoding of the same file.
func etag(info fs.FileInfo, encoding string) string {
	b := make([]byte, 0, 40)
	b = append(b, '"')
	b = strconv.AppendInt(b, info.ModTime().UnixNano(), 36)
	b = append(b, '-')
	b = strconv.AppendInt(b, info.Size(), 36)
	if encoding != "" {
		b = append(b, '-')
		b = append(b, encoding...)
	}
	return string(append(b, '"'))
}

// accepts reports whether an Accept-Encoding value allows token: named
// with a non-zero q, or covered by "*" without being refused by name.
func accepts(header, token string) bool {
	star := false
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.TrimSpace(coding)
		allowed := !zeroQ(params)
		switch {
		case strings.EqualFold(coding, token):
			return allowed
		case coding == "*":
			star = allowed
		}
	}
	return star
}

// zeroQ reports whether parameters of an Accept-Encoding item set q=0.
func zeroQ(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q == 0
		}
	}
	return false
}

// hasContentHash reports whether a file name carries a content hash as a
// segment of its own, as bundlers and Django's ManifestStaticFilesStorage
// write them (app.3f2a9c1e.js, main-3f2a9c1e1234.css): 8 to 64 hex digits
// with at least one digit and one letter, so that neither words nor dates
// pass. Such a file never changes under its name.
func hasContentHash(base string) bool {
	base = strings.TrimRight(base, nameSeparators)
	end := strings.LastIndexAny(base, nameSeparators)
	if end < 0 {
		return false
	}
	// Segments before the last one, which is the extension; iterated
	// rather than split, since this runs on every static request.
	for seg := range strings.FieldsFuncSeq(base[:end], func(r rune) bool { return strings.ContainsRune(nameSeparators, r) }) {
		if isHash(seg) {
			return true
		}
	}
	return false
}

// nameSeparators separate the segments of a file name.
const nameSeparators = ".-_"

func isHash(seg string) bool {
	if len(seg) < 8 || len(seg) > 64 {
		return false
	}
	var digit, letter bool
	for _, c := range []byte(seg) {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'f':
			letter = true
		default:
			return false
		}
	}
	return digit && letter
}

// countingWriter notes the status and body size of what ServeContent
// sends. It passes ReadFrom through, so that the copy stays a sendfile(2).
type countingWriter struct {
	http.ResponseWriter
	status  int
	written int64
}

func (c *countingWriter) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.written += int64(n)
	return n, err
}

func (c *countingWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := c.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{c}, src)
	}
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := rf.ReadFrom(src)
	c.written += n
	return n, err
}

// writerOnly hides ReadFrom, so that io.Copy falls back to Write.
type writerOnly struct{ io.Writer }

// Unwrap lets http.ResponseController reach the connection.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
