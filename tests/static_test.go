package tests

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// staticMtime is the modification time of every file the static tests
// write, so that Last-Modified is known in advance.
var staticMtime = time.Date(2023, time.May, 17, 10, 30, 0, 0, time.UTC)

// etagRE is a quoted entity tag, strong or weak.
var etagRE = regexp.MustCompile(`^(W/)?"[^"]+"$`)

// notSent is the body staticapp returns along with X-Sendfile and
// X-Accel-Redirect: it must never reach a client.
const notSent = "SHOULD-NOT-BE-SENT"

// putFile writes data to dir/name (creating directories) with staticMtime.
func putFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, staticMtime, staticMtime); err != nil {
		t.Fatal(err)
	}
	return path
}

// symlink makes link point at target, failing the test on error.
func symlink(t testing.TB, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// secretMarker is a string unique to the test run, for files that must
// never be served.
func secretMarker(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "WSGO-STATIC-SECRET-" + hex.EncodeToString(b)
}

// getWith sends a GET for path with the given headers ("Name: value").
func getWith(t testing.TB, s *server, path string, headers ...string) *response {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ": ")
		if !ok {
			t.Fatalf("bad header %q", h)
		}
		req.Header.Set(name, value)
	}
	return do(t, req)
}

// rawTarget sends "GET target HTTP/1.1" exactly as given, on a new
// connection, and returns the raw answer (nil if the server sent nothing).
func rawTarget(t testing.TB, s *server, target string) []byte {
	t.Helper()
	return rawExchange(t, s, "GET "+target+" HTTP/1.1\r\nHost: "+s.Addr+"\r\nConnection: close\r\n\r\n")
}

// wantFile checks that r is a 200 with exactly want as its body.
func wantFile(t testing.TB, what string, r *response, want []byte) {
	t.Helper()
	if r.Status != 200 {
		t.Errorf("%s: status = %q, want 200; body: %.200q", what, r.StatusLine, r.Body)
		return
	}
	if !bytes.Equal(r.Body, want) {
		t.Errorf("%s: body = %.200q (%d bytes), want %.200q (%d bytes)", what, r.Body, len(r.Body), want, len(want))
	}
}

// inStorageModes runs test, in parallel subtests, in the two ways the
// server sends a static file: small ones from memory (the default), and
// every one from disk; args are the flags that choose the way.
func inStorageModes(t *testing.T, test func(t *testing.T, args []string)) {
	t.Parallel()
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"memory", nil},
		{"disk", []string{"--static-memory", "0"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			test(t, mode.args)
		})
	}
}

// wantApp checks that r is staticapp's answer for path: the request fell
// through to the WSGI app.
func wantApp(t testing.TB, path string, r *response) {
	t.Helper()
	if r.Status != 200 || r.String() != "app:"+path {
		t.Errorf("GET %s: got %q with body %.200q, want it to fall through to the app (200 %q)", path, r.StatusLine, r.Body, "app:"+path)
	}
}

func TestStaticServing(t *testing.T) { inStorageModes(t, testStaticServing) }

func testStaticServing(t *testing.T, args []string) {
	dir := filepath.Join(t.TempDir(), "public")
	files := map[string][]byte{
		"a.css":                 []byte("body { color: #123456; }\n"),
		"app.js":                []byte("console.log('app');\n"),
		"jquery.min.js":         []byte("/* jquery */\n"),
		"app.3f2a9c1e.js":       []byte("console.log('hashed app');\n"),
		"main.3f2a9c1e1234.css": []byte("main { margin: 0; }\n"),
		"logo.png":              append([]byte("\x89PNG\r\n\x1a\n"), pseudoRandom(300, 7)...),
		"data.bin":              pseudoRandom(1000, 11),
		"sub/deep/x.txt":        []byte("deep file\n"),
		"big.bin":               pseudoRandom(100_000, 13), // too big to keep in memory
	}
	for name, data := range files {
		putFile(t, dir, name, data)
	}
	// The map's directory is relative: to --chdir (testdata).
	rel, err := filepath.Rel(testdataDir(t), dir)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "staticapp", append([]string{"--static-map", "/static=" + rel}, args...)...)
	s2 := startServer(t, "staticapp", append([]string{"--static-map", "/assets=" + dir, "--static-max-age", "3600"}, args...)...)
	lastModified := staticMtime.Format(http.TimeFormat)

	t.Run("files", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name      string
			ctype     func(string) bool
			immutable bool
		}{
			{"a.css", func(ct string) bool { return ct == "text/css; charset=utf-8" }, false},
			{"app.js", func(ct string) bool { return strings.Contains(ct, "javascript") }, false},
			{"jquery.min.js", func(ct string) bool { return strings.Contains(ct, "javascript") }, false},
			{"app.3f2a9c1e.js", func(ct string) bool { return strings.Contains(ct, "javascript") }, true},
			{"main.3f2a9c1e1234.css", func(ct string) bool { return ct == "text/css; charset=utf-8" }, true},
			{"logo.png", func(ct string) bool { return ct == "image/png" }, false},
			{"sub/deep/x.txt", func(ct string) bool { return strings.HasPrefix(ct, "text/plain") }, false},
			{"big.bin", func(ct string) bool { return ct == "application/octet-stream" }, false},
		} {
			path := "/static/" + tc.name
			r := get(t, s.URL+path)
			wantFile(t, "GET "+path, r, files[tc.name])
			if r.Status != 200 {
				continue
			}
			h := r.Header
			if got, want := h.Get("Content-Length"), strconv.Itoa(len(files[tc.name])); got != want {
				t.Errorf("GET %s: Content-Length = %q, want %q", path, got, want)
			}
			if ct := h.Get("Content-Type"); !tc.ctype(ct) {
				t.Errorf("GET %s: Content-Type = %q", path, ct)
			}
			if got := h.Get("Last-Modified"); got != lastModified {
				t.Errorf("GET %s: Last-Modified = %q, want %q", path, got, lastModified)
			}
			if et := h.Get("ETag"); !etagRE.MatchString(et) {
				t.Errorf("GET %s: ETag = %q, want a quoted entity tag", path, et)
			}
			if got := h.Get("Accept-Ranges"); got != "bytes" {
				t.Errorf("GET %s: Accept-Ranges = %q, want bytes", path, got)
			}
			cc := h.Get("Cache-Control")
			if !strings.Contains(cc, "public") || !strings.Contains(cc, "max-age=86400") {
				t.Errorf("GET %s: Cache-Control = %q, want public, max-age=86400", path, cc)
			}
			if strings.Contains(cc, "immutable") != tc.immutable {
				t.Errorf("GET %s: Cache-Control = %q, want immutable=%v (content-hashed name: %v)", path, cc, tc.immutable, tc.immutable)
			}
		}
	})

	t.Run("query string is ignored", func(t *testing.T) {
		t.Parallel()
		wantFile(t, "GET /static/a.css?v=42", get(t, s.URL+"/static/a.css?v=42"), files["a.css"])
	})

	t.Run("static-max-age", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name      string
			immutable bool
		}{{"a.css", false}, {"app.3f2a9c1e.js", true}} {
			r := get(t, s2.URL+"/assets/"+tc.name)
			wantFile(t, "GET /assets/"+tc.name, r, files[tc.name])
			cc := r.Header.Get("Cache-Control")
			if !strings.Contains(cc, "public") || !strings.Contains(cc, "max-age=3600") || strings.Contains(cc, "86400") {
				t.Errorf("%s with --static-max-age 3600: Cache-Control = %q", tc.name, cc)
			}
			if strings.Contains(cc, "immutable") != tc.immutable {
				t.Errorf("%s with --static-max-age 3600: Cache-Control = %q, want immutable=%v", tc.name, cc, tc.immutable)
			}
		}
	})

	t.Run("misses fall through to the app", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{
			"/static/nope.css",       // no such file
			"/static",                // the directory itself
			"/static/",               // likewise
			"/static/sub/deep",       // a directory
			"/staticx/a.css",         // not on a segment boundary
			"/static.css",            // likewise
			"/a.css",                 // outside the map
			"/static/a.css/more",     // a file used as a directory
			"/static/sub/deep/y.txt", // missing, in a real directory
		} {
			wantApp(t, path, get(t, s.URL+path))
		}
		wantApp(t, "/static/a.css", get(t, s2.URL+"/static/a.css"))
	})

	t.Run("conditional", func(t *testing.T) {
		t.Parallel()
		first := get(t, s.URL+"/static/a.css")
		wantStatus(t, first, 200)
		etag, lm := first.Header.Get("ETag"), first.Header.Get("Last-Modified")
		if etag == "" || lm == "" {
			t.Fatalf("no ETag (%q) or Last-Modified (%q)", etag, lm)
		}
		for _, tc := range []struct {
			header string
			status int
		}{
			{"If-None-Match: " + etag, 304},
			{"If-Modified-Since: " + lm, 304},
			{"If-Modified-Since: " + staticMtime.Add(-time.Hour).Format(http.TimeFormat), 200},
			{`If-None-Match: "not-the-etag"`, 200},
		} {
			r := getWith(t, s, "/static/a.css", tc.header)
			if r.Status != tc.status {
				t.Errorf("%s: status = %q, want %d", tc.header, r.StatusLine, tc.status)
				continue
			}
			if tc.status == 304 && len(r.Body) != 0 {
				t.Errorf("%s: 304 with a body %q", tc.header, r.Body)
			}
			if tc.status == 200 && !bytes.Equal(r.Body, files["a.css"]) {
				t.Errorf("%s: body = %q", tc.header, r.Body)
			}
		}
	})

	t.Run("range", func(t *testing.T) {
		t.Parallel()
		data := files["data.bin"]
		size := len(data)
		for _, tc := range []struct {
			rng          string
			status       int
			contentRange string
			body         []byte
		}{
			{"bytes=0-9", 206, fmt.Sprintf("bytes 0-9/%d", size), data[:10]},
			{"bytes=-5", 206, fmt.Sprintf("bytes %d-%d/%d", size-5, size-1, size), data[size-5:]},
			{"bytes=990-", 206, fmt.Sprintf("bytes 990-%d/%d", size-1, size), data[990:]},
			{fmt.Sprintf("bytes=%d-", size+10), 416, "", nil},
		} {
			r := getWith(t, s, "/static/data.bin", "Range: "+tc.rng)
			if r.Status != tc.status {
				t.Errorf("Range %s: status = %q, want %d", tc.rng, r.StatusLine, tc.status)
				continue
			}
			if tc.status != 206 {
				continue
			}
			if got := r.Header.Get("Content-Range"); got != tc.contentRange {
				t.Errorf("Range %s: Content-Range = %q, want %q", tc.rng, got, tc.contentRange)
			}
			if !bytes.Equal(r.Body, tc.body) {
				t.Errorf("Range %s: body = %x, want %x", tc.rng, r.Body, tc.body)
			}
			if got, want := r.Header.Get("Content-Length"), strconv.Itoa(len(tc.body)); got != want {
				t.Errorf("Range %s: Content-Length = %q, want %q", tc.rng, got, want)
			}
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		t.Parallel()
		r := rawHead(t, s, "/static/data.bin")
		wantStatus(t, r, 200)
		if got, want := r.Header.Get("Content-Length"), strconv.Itoa(len(files["data.bin"])); got != want {
			t.Errorf("HEAD: Content-Length = %q, want %q", got, want)
		}
		if got := r.Header.Get("Last-Modified"); got != lastModified {
			t.Errorf("HEAD: Last-Modified = %q, want %q", got, lastModified)
		}
	})
}

// TestStaticPrefixes: the longest matching prefix wins, prefixes match
// whole path segments, "/" matches everything, and a miss goes to the app
// (not to a shorter prefix).
func TestStaticPrefixes(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	media, thumbs, root := filepath.Join(tmp, "media"), filepath.Join(tmp, "thumbs"), filepath.Join(tmp, "root")
	putFile(t, media, "x.txt", []byte("media-x"))
	putFile(t, media, "thumbs/y.txt", []byte("media-thumbs-y"))
	putFile(t, media, "thumbs/only-in-media.txt", []byte("media-thumbs-only"))
	putFile(t, media, "foo/x.txt", []byte("media-foo-x"))
	putFile(t, thumbs, "y.txt", []byte("thumbs-y"))
	putFile(t, root, "index.txt", []byte("root-index"))
	putFile(t, root, "mediafoo/x.txt", []byte("root-mediafoo-x"))
	putFile(t, root, "media/x.txt", []byte("root-media-x"))

	for _, tc := range []struct {
		name string
		args []string
	}{
		{"longest first", []string{"--static-map", "/media/thumbs=" + thumbs, "--static-map", "/media=" + media}},
		{"longest last", []string{"--static-map", "/media=" + media, "--static-map", "/media/thumbs=" + thumbs}},
		{"with root, longest last", []string{"--static-map", "/=" + root, "--static-map", "/media=" + media, "--static-map", "/media/thumbs=" + thumbs}},
		{"with root, longest first", []string{"--static-map", "/media/thumbs=" + thumbs, "--static-map", "/media=" + media, "--static-map", "/=" + root}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "staticapp", tc.args...)
			withRoot := strings.HasPrefix(tc.name, "with root")
			wantFile(t, "/media/x.txt", get(t, s.URL+"/media/x.txt"), []byte("media-x"))
			wantFile(t, "/media/thumbs/y.txt", get(t, s.URL+"/media/thumbs/y.txt"), []byte("thumbs-y"))
			// In /media/thumbs's domain but only under /media's directory.
			wantApp(t, "/media/thumbs/only-in-media.txt", get(t, s.URL+"/media/thumbs/only-in-media.txt"))
			wantApp(t, "/media", get(t, s.URL+"/media"))
			wantApp(t, "/nothing.txt", get(t, s.URL+"/nothing.txt"))
			if withRoot {
				wantFile(t, "/index.txt", get(t, s.URL+"/index.txt"), []byte("root-index"))
				wantFile(t, "/mediafoo/x.txt", get(t, s.URL+"/mediafoo/x.txt"), []byte("root-mediafoo-x"))
			} else {
				wantApp(t, "/mediafoo/x.txt", get(t, s.URL+"/mediafoo/x.txt"))
				wantApp(t, "/index.txt", get(t, s.URL+"/index.txt"))
			}
			wantApp(t, "/media/thumbsx/y.txt", get(t, s.URL+"/media/thumbsx/y.txt"))
		})
	}
}

func TestStaticPrecompressed(t *testing.T) { inStorageModes(t, testStaticPrecompressed) }

func testStaticPrecompressed(t *testing.T, args []string) {
	dir := t.TempDir()
	plain := []byte("a { color: red; } /* plain */\n")
	gz := []byte("GZ-VARIANT-BYTES")
	br := []byte("BR-VARIANT-BYTES!")
	bPlain := []byte("b { color: blue; }\n")
	bGz := []byte("B-GZ-VARIANT")
	putFile(t, dir, "a.css", plain)
	putFile(t, dir, "a.css.gz", gz)
	putFile(t, dir, "a.css.br", br)
	putFile(t, dir, "b.css", bPlain) // with a gzip sibling only
	putFile(t, dir, "b.css.gz", bGz)
	s := startServer(t, "staticapp", append([]string{"--static-map", "/static=" + dir}, args...)...)

	etags := map[string]string{}
	for _, tc := range []struct {
		path, acceptEncoding, encoding string
		body                           []byte
	}{
		{"/static/a.css", "gzip, br", "br", br},
		{"/static/a.css", "br", "br", br},
		{"/static/a.css", "gzip", "gzip", gz},
		{"/static/a.css", "", "", plain},
		{"/static/a.css", "br;q=0, gzip", "gzip", gz},
		{"/static/a.css", "identity", "", plain},
		{"/static/b.css", "gzip, br", "gzip", bGz},
		{"/static/b.css", "br", "", bPlain},
	} {
		what := fmt.Sprintf("GET %s with Accept-Encoding %q", tc.path, tc.acceptEncoding)
		var r *response
		if tc.acceptEncoding == "" {
			r = get(t, s.URL+tc.path)
		} else {
			r = getWith(t, s, tc.path, "Accept-Encoding: "+tc.acceptEncoding)
		}
		wantFile(t, what, r, tc.body)
		if r.Status != 200 {
			continue
		}
		if got := r.Header.Get("Content-Encoding"); got != tc.encoding {
			t.Errorf("%s: Content-Encoding = %q, want %q", what, got, tc.encoding)
		}
		if got, want := r.Header.Get("Content-Length"), strconv.Itoa(len(tc.body)); got != want {
			t.Errorf("%s: Content-Length = %q, want %q", what, got, want)
		}
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
			t.Errorf("%s: Content-Type = %q, want text/css", what, ct)
		}
		if tc.encoding != "" && !strings.Contains(strings.ToLower(strings.Join(r.Header.Values("Vary"), ",")), "accept-encoding") {
			t.Errorf("%s: Vary = %q, want Accept-Encoding in it", what, r.Header.Values("Vary"))
		}
		if tc.path == "/static/a.css" {
			etags[tc.encoding] = r.Header.Get("ETag")
		}
	}
	if etags[""] == "" || etags["br"] == "" || etags["gzip"] == "" ||
		etags[""] == etags["br"] || etags[""] == etags["gzip"] || etags["br"] == etags["gzip"] {
		t.Errorf("ETags of the plain, br and gzip variants = %q, %q, %q: want three different ones", etags[""], etags["br"], etags["gzip"])
	}

	t.Run("conditional per variant", func(t *testing.T) {
		if etags["br"] == "" || etags[""] == "" {
			t.Skip("no ETags to compare")
		}
		r := getWith(t, s, "/static/a.css", "Accept-Encoding: br", "If-None-Match: "+etags["br"])
		if r.Status != 304 {
			t.Errorf("br variant with its own ETag: status = %q, want 304", r.StatusLine)
		}
		r = getWith(t, s, "/static/a.css", "Accept-Encoding: br", "If-None-Match: "+etags[""])
		wantFile(t, "br variant with the plain ETag", r, br)
	})

	t.Run("sibling requested directly", func(t *testing.T) {
		r := getWith(t, s, "/static/a.css.gz", "Accept-Encoding: gzip, br")
		wantFile(t, "GET /static/a.css.gz", r, gz)
		if got := r.Header.Get("Content-Encoding"); got != "" {
			t.Errorf("GET /static/a.css.gz: Content-Encoding = %q, want none (the file as is)", got)
		}
		r = get(t, s.URL+"/static/a.css.br")
		wantFile(t, "GET /static/a.css.br", r, br)
	})
}

// TestStaticChanges: a file kept in memory is looked at again within a
// second or so, so a changed file is served anew and a deleted one falls
// through to the app; a new file is served at once.
func TestStaticChanges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	putFile(t, dir, "a.txt", []byte("first version"))
	putFile(t, dir, "gone.txt", []byte("about to go"))
	s := startServer(t, "staticapp", "--static-map", "/static="+dir)
	wantFile(t, "GET /static/a.txt", get(t, s.URL+"/static/a.txt"), []byte("first version"))
	wantFile(t, "GET /static/gone.txt", get(t, s.URL+"/static/gone.txt"), []byte("about to go"))
	wantApp(t, "/static/new.txt", get(t, s.URL+"/static/new.txt"))

	if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("second version, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	putFile(t, dir, "new.txt", []byte("new file"))
	wantFile(t, "GET /static/new.txt once written", get(t, s.URL+"/static/new.txt"), []byte("new file"))
	waitFor(t, 5*time.Second, "the changed a.txt to be served", func() bool {
		return get(t, s.URL+"/static/a.txt").String() == "second version, longer"
	})
	waitFor(t, 5*time.Second, "the deleted gone.txt to fall through", func() bool {
		return get(t, s.URL+"/static/gone.txt").String() == "app:/static/gone.txt"
	})
}

// TestStaticAttacks: requests that try to leave the mapped directory, or
// to reach what it must not show, fall through to the app or get 400/404,
// and never see a secret.
func TestStaticAttacks(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "public")
	marker := secretMarker(t)
	secret := putFile(t, tmp, "secret.txt", []byte(marker+"\n"))
	putFile(t, dir, "pub.txt", []byte("public file\n"))
	putFile(t, dir, "a.css", []byte("a {}\n"))
	putFile(t, dir, ".env", []byte("TOKEN="+marker+"\n"))
	putFile(t, dir, ".git/config", []byte("[core] "+marker+"\n"))
	putFile(t, dir, "sub/listing-canary.txt", []byte("in sub\n"))
	symlink(t, secret, filepath.Join(dir, "link"))
	symlink(t, "../secret.txt", filepath.Join(dir, "rellink"))
	symlink(t, "/etc", filepath.Join(dir, "etc"))
	// Symlinks that stay inside the directory are allowed.
	symlink(t, "pub.txt", filepath.Join(dir, "alias.txt"))
	symlink(t, filepath.Join(dir, "pub.txt"), filepath.Join(dir, "absalias.txt"))
	symlink(t, "sub", filepath.Join(dir, "subalias"))

	for _, cfg := range []struct {
		name, prefix string
	}{{"prefix map", "/static"}, {"root map", ""}} {
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			mapPrefix := cfg.prefix
			if mapPrefix == "" {
				mapPrefix = "/"
			}
			s := startServer(t, "staticapp", "--static-map", mapPrefix+"="+dir)
			p := cfg.prefix

			// The map works, so the refusals below mean something.
			wantFile(t, p+"/pub.txt", get(t, s.URL+p+"/pub.txt"), []byte("public file\n"))
			t.Run("symlinks inside are served", func(t *testing.T) {
				for _, tc := range []struct{ what, path, want string }{
					{"relative symlink to a file inside", "/alias.txt", "public file\n"},
					{"absolute symlink to a file inside", "/absalias.txt", "public file\n"},
					{"relative symlink to a directory inside", "/subalias/listing-canary.txt", "in sub\n"},
				} {
					wantFile(t, p+tc.path+" ("+tc.what+")", get(t, s.URL+p+tc.path), []byte(tc.want))
				}
			})

			targets := []string{
				p + "/../secret.txt",
				p + "/%2e%2e/secret.txt",
				p + "/%2E%2E/secret.txt",
				p + "/..%2fsecret.txt",
				p + "/..%2Fsecret.txt",
				p + "/%2e%2e%2fsecret.txt",
				p + "/%252e%252e/secret.txt",
				p + "/sub/../../secret.txt",
				p + "/sub/%2e%2e/%2e%2e/secret.txt",
				p + "/./../secret.txt",
				p + "/link",
				p + "/rellink",
				p + "/etc/passwd",
				p + "/etc/",
				p + "/.env",
				p + "/.git/config",
				p + "/%2eenv",
				p + "/sub",
				p + "/sub/",
				p + "/",
				p + "/a%00.css",
				p + "/pub.txt%00.css",
				p + `/..\secret.txt`,
				p + "/%5c..%5csecret.txt",
				p + "/..%5csecret.txt",
				"//etc/passwd",
				p + "//etc/passwd",
				p + "/" + strings.Repeat("a", 5000),
				"http://127.0.0.1" + p + "/../secret.txt",
				"http://127.0.0.1" + p + "/%2e%2e/secret.txt",
			}
			for _, target := range targets {
				raw := rawTarget(t, s, target)
				what := fmt.Sprintf("GET %.80s", target)
				if len(raw) == 0 {
					t.Errorf("%s: no response at all", what)
					continue
				}
				for _, bad := range []string{marker, "root:", "listing-canary"} {
					if bytes.Contains(raw, []byte(bad)) {
						t.Errorf("%s: the response contains %q: %.500q", what, bad, raw)
					}
				}
				r := parseRaw(t, raw, "GET")
				switch {
				case r.Status == 400 || r.Status == 404:
				case r.Status == 200 && strings.HasPrefix(r.String(), "app:"):
				default:
					t.Errorf("%s: got %q, body %.200q; want the app's answer, 400 or 404", what, r.StatusLine, r.Body)
				}
			}
			wantFile(t, "after the attacks", get(t, s.URL+p+"/pub.txt"), []byte("public file\n"))
			s.Alive(t)
		})
	}
}

// TestStaticSendfile: X-Sendfile and X-Accel-Redirect from the app serve
// files from the static maps and --sendfile-root directories, and nothing
// else.
func TestStaticSendfile(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	pub, priv := filepath.Join(tmp, "pub"), filepath.Join(tmp, "priv")
	marker := secretMarker(t)
	secret := putFile(t, tmp, "secret.txt", []byte(marker+"\n"))
	css := []byte("a { color: green; }\n")
	pubFile := pseudoRandom(5000, 3)
	privFile := pseudoRandom(70000, 5)
	putFile(t, pub, "a.css", css)
	pubPath := putFile(t, pub, "doc.bin", pubFile)
	privPath := putFile(t, priv, "f.bin", privFile)
	symlink(t, secret, filepath.Join(priv, "link"))
	s := startServer(t, "staticapp", "--static-map", "/static="+pub, "--sendfile-root", priv)

	sendfile := func(endpoint, path string, headers ...string) *response {
		t.Helper()
		return getWith(t, s, endpoint+"?path="+url.QueryEscape(path), headers...)
	}
	accel := func(uri string) *response {
		t.Helper()
		return getWith(t, s, "/accel?uri="+url.QueryEscape(uri))
	}
	// noLeak checks that neither the app's body nor a secret got out.
	noLeak := func(what string, r *response) {
		t.Helper()
		for _, bad := range []string{notSent, marker, "root:"} {
			if bytes.Contains(r.Body, []byte(bad)) {
				t.Errorf("%s: body contains %q: %.300q", what, bad, r.Body)
			}
		}
		for _, h := range []string{"X-Sendfile", "X-Accel-Redirect"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("%s: the response carries %s: %q", what, h, v)
			}
		}
	}

	t.Run("served", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			endpoint, path string
			want           []byte
		}{
			{"/sendfile", pubPath, pubFile},
			{"/sendfile", privPath, privFile},
			{"/sendfile-gen", privPath, privFile},
			{"/sendfile-closing", pubPath, pubFile},
		} {
			what := fmt.Sprintf("%s with %s", tc.endpoint, tc.path)
			r := sendfile(tc.endpoint, tc.path)
			wantFile(t, what, r, tc.want)
			noLeak(what, r)
			if r.Status != 200 {
				continue
			}
			if got := r.Header.Get("Content-Type"); got != "application/x-test" {
				t.Errorf("%s: Content-Type = %q, want the app's application/x-test", what, got)
			}
			if got := r.Header.Get("Content-Disposition"); got != "attachment" {
				t.Errorf("%s: Content-Disposition = %q, want the app's attachment", what, got)
			}
			if got, want := r.Header.Get("Content-Length"), strconv.Itoa(len(tc.want)); got != want {
				t.Errorf("%s: Content-Length = %q, want %q", what, got, want)
			}
		}
	})

	t.Run("range", func(t *testing.T) {
		t.Parallel()
		r := sendfile("/sendfile", privPath, "Range: bytes=0-9")
		noLeak("ranged X-Sendfile", r)
		if r.Status != 206 {
			t.Fatalf("ranged X-Sendfile: status = %q, want 206", r.StatusLine)
		}
		if got, want := r.Header.Get("Content-Range"), fmt.Sprintf("bytes 0-9/%d", len(privFile)); got != want {
			t.Errorf("ranged X-Sendfile: Content-Range = %q, want %q", got, want)
		}
		if !bytes.Equal(r.Body, privFile[:10]) {
			t.Errorf("ranged X-Sendfile: body = %x, want %x", r.Body, privFile[:10])
		}
	})

	t.Run("iterable is closed", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct{ endpoint, path, token string }{
			{"/sendfile-gen", privPath, "gen-ok"},
			{"/sendfile-closing", privPath, "closing-ok"},
			{"/sendfile-gen", filepath.Join(priv, "missing.bin"), "gen-missing"},
			{"/sendfile-closing", secret, "closing-outside"},
		} {
			r := getWith(t, s, tc.endpoint+"?token="+tc.token+"&path="+url.QueryEscape(tc.path))
			noLeak(tc.token, r)
			var n string
			waitFor(t, waitTimeout, "close() of the "+tc.token+" iterable", func() bool {
				n = get(t, s.URL+"/closed?token="+tc.token).String()
				return n != "0"
			})
			if n != "1" {
				t.Errorf("%s: close() ran %s times, want 1", tc.token, n)
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		for _, path := range []string{
			"/etc/passwd",
			secret,
			priv + "/../secret.txt",
			pub + "/../secret.txt",
			filepath.Join(priv, "link"),
			filepath.Join(priv, "missing.bin"),
			filepath.Join(pub, "missing.css"),
			priv, // a directory
		} {
			what := "X-Sendfile: " + path
			r := sendfile("/sendfile", path)
			noLeak(what, r)
			if r.Status != 404 {
				t.Errorf("%s: status = %q, want 404; body %.200q", what, r.StatusLine, r.Body)
			}
		}
	})

	t.Run("X-Accel-Redirect", func(t *testing.T) {
		t.Parallel()
		r := accel("/static/a.css")
		wantFile(t, "X-Accel-Redirect: /static/a.css", r, css)
		noLeak("X-Accel-Redirect: /static/a.css", r)
		r = accel("/f.bin")
		wantFile(t, "X-Accel-Redirect: /f.bin (under --sendfile-root)", r, privFile)
		noLeak("X-Accel-Redirect: /f.bin", r)
		for _, uri := range []string{
			"/static/../secret.txt",
			"/../secret.txt",
			"/%2e%2e/secret.txt",
			"/static/missing.css",
			"/missing.bin",
			"/link",
			"/etc/passwd",
		} {
			what := "X-Accel-Redirect: " + uri
			r := accel(uri)
			noLeak(what, r)
			if r.Status != 404 {
				t.Errorf("%s: status = %q, want 404; body %.200q", what, r.StatusLine, r.Body)
			}
		}
	})

	t.Run("sendfile root is not public", func(t *testing.T) {
		t.Parallel()
		wantApp(t, "/f.bin", get(t, s.URL+"/f.bin"))
		wantApp(t, "/priv/f.bin", get(t, s.URL+"/priv/f.bin"))
	})

	t.Run("still serving", func(t *testing.T) {
		// After a batch of X-Sendfile answers on one connection, plain
		// requests still work on it.
		for i := 0; i < 3; i++ {
			wantFile(t, "X-Sendfile", sendfile("/sendfile", privPath), privFile)
			wantFile(t, "/static/a.css", get(t, s.URL+"/static/a.css"), css)
			wantApp(t, "/hello", get(t, s.URL+"/hello"))
		}
		s.Alive(t)
	})
}

// TestStaticSlowClient: clients that are slow to read a large static file
// do not hold the only Python worker.
func TestStaticSlowClient(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The 256 KiB file fits in the kernel's socket buffers on loopback; the
	// 16 MiB one cannot (tcp_wmem tops out at 4 MiB by default), so its
	// sender really waits for the reader.
	files := map[string][]byte{
		"big.bin":  pseudoRandom(256<<10, 99),
		"huge.bin": pseudoRandom(16<<20, 101),
	}
	for name, data := range files {
		putFile(t, dir, name, data)
	}
	s := startServer(t, "staticapp", "--workers", "1", "--static-map", "/static="+dir)
	wantApp(t, "/hello", get(t, s.URL+"/hello")) // the app is warm

	// Small receive buffers, so the server cannot push the whole file
	// into the kernel and be done with it.
	dialer := &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	type slow struct {
		c      net.Conn
		br     *bufio.Reader
		status string
		name   string
	}
	var slows []*slow
	for _, name := range []string{"big.bin", "big.bin", "huge.bin", "huge.bin"} {
		c, err := dialer.DialContext(context.Background(), "tcp", s.Addr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := io.WriteString(c, "GET /static/"+name+" HTTP/1.1\r\nHost: "+s.Addr+"\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatalf("write: %v", err)
		}
		sl := &slow{c: c, br: bufio.NewReaderSize(c, 1024), name: name}
		// The response has begun; read no further for now.
		sl.status, err = sl.br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the status line of the slow response: %v", err)
		}
		if !strings.Contains(sl.status, " 200 ") {
			t.Fatalf("slow GET /static/%s: status line %q", name, sl.status)
		}
		slows = append(slows, sl)
	}

	quick := freshClient(2 * time.Second)
	start := time.Now()
	status, body, err := fetch(quick, s.URL+"/hello")
	if err != nil || status != 200 || body != "app:/hello" {
		t.Fatalf("GET /hello while %d clients read a static file slowly: %d %q %v (after %v)", len(slows), status, body, err, time.Since(start))
	}

	// The slow clients still get the whole file.
	for i, sl := range slows {
		rest, err := io.ReadAll(sl.br)
		if err != nil {
			t.Errorf("slow client %d: reading: %v", i, err)
			continue
		}
		r := parseRaw(t, append([]byte(sl.status), rest...), "GET")
		wantFile(t, fmt.Sprintf("slow client %d (%s)", i, sl.name), r, files[sl.name])
	}
}
