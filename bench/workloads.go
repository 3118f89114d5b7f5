package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// A workload is one Python application under bench/apps (or a static file)
// together with how wrk drives it and how a single response from it is
// recognised as correct.
type workload struct {
	// Name is the workload's identifier in -only and in BENCHMARKS.md.
	Name string
	// Module is the module in bench/apps that exposes `application`.
	Module string
	// Desc says in a few words what the application does.
	Desc string
	// Path is the path requested ("" means "/").
	Path string
	// Static says that the servers map staticMount to the directory of
	// static files the harness writes (config.staticDir), so that Path is
	// answered from a file without calling the application.
	Static bool
	// MaxAge, when positive, is the --max-age that wsgo configurations with
	// their response cache on get for this workload.
	MaxAge int
	// Servers, when set, lists the only servers that run this workload
	// (those that can serve it as it is meant: a static file, say).
	Servers []string
	// Connections is wrk's -c for this workload, the same for every server.
	Connections int
	// Script is a wrk Lua script in the bench directory, or "".
	Script string
	// Method is the HTTP method of the correctness check ("" means GET).
	Method string
	// Check verifies one response (status already known to be 200).
	Check func(h http.Header, body []byte) error
	// Flood, when set, makes this a fairness workload (see fairness.go):
	// wrk floods this path as one client, with Script, while the harness's
	// polite client requests Path, alone and then under the flood.
	// FloodCheck verifies one response to Flood.
	Flood      string
	FloodCheck func(h http.Header, body []byte) error
}

// Bodies that the checks compare against, built once.
var (
	body100k = patternBytes(100 * 1024)
	stream1m = bytes.Repeat([]byte("x"), 100*10*1024)
	// file50k is the static file of the static50k workload, which the
	// harness writes to staticDir/staticFile50k.
	file50k = patternBytes(50 * 1024)
)

// patternBytes returns n bytes in which byte i is i mod 251, as
// bench/apps/body100k.py builds its body.
func patternBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// staticMount is the path prefix under which the servers map the static
// directory, and staticFile50k the file the static50k workload requests.
const (
	staticMount   = "/static"
	staticFile50k = "file50k.bin"
)

// cachedRows is how many table rows bench/apps/cachedpage.py renders.
const cachedRows = 50

// workloads lists every workload in the order they run and are reported.
var workloads = []workload{
	{
		Name: "hello", Module: "hello", Connections: 50,
		Desc: "12-byte `Hello world!` text/plain body",
		Check: func(h http.Header, body []byte) error {
			if !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
				return fmt.Errorf("Content-Type %q, want text/plain", h.Get("Content-Type"))
			}
			return wantBody(body, []byte("Hello world!"))
		},
	},
	{
		Name: "json", Module: "jsondoc", Connections: 50,
		Desc: "20-item JSON document built with json.dumps per request",
		Check: func(h http.Header, body []byte) error {
			var doc struct {
				Count int               `json:"count"`
				Items []json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal(body, &doc); err != nil {
				return fmt.Errorf("body is not JSON: %v", err)
			}
			if doc.Count != 20 || len(doc.Items) != 20 {
				return fmt.Errorf("count %d with %d items, want 20", doc.Count, len(doc.Items))
			}
			return nil
		},
	},
	{
		Name: "body100k", Module: "body100k", Connections: 50,
		Desc: "100 KB bytes body prebuilt at import",
		Check: func(h http.Header, body []byte) error {
			return wantBody(body, body100k)
		},
	},
	{
		Name: "stream1m", Module: "stream1m", Connections: 10,
		Desc: "generator yielding 100 × 10 KB chunks (1,024,000 bytes, no Content-Length)",
		Check: func(h http.Header, body []byte) error {
			return wantBody(body, stream1m)
		},
	},
	{
		Name: "post64k", Module: "post64k", Connections: 50, Script: "post64k.lua", Method: http.MethodPost,
		Desc: "POST of 64 KB read from wsgi.input, answered with its SHA-256 hex digest",
		Check: func(h http.Header, body []byte) error {
			sum := sha256.Sum256(post64kBody)
			return wantBody(body, []byte(hex.EncodeToString(sum[:])))
		},
	},
	{
		Name: "sleep20ms", Module: "sleep20ms", Connections: 200,
		Desc: "`time.sleep(0.02)` then an 11-byte body",
		Check: func(h http.Header, body []byte) error {
			return wantBody(body, []byte("slept 20ms\n"))
		},
	},
	{
		Name: "django", Module: "djangopage", Connections: 50,
		Desc: "Django 3.2 view rendering a template over a 20-item list, no database",
		Check: func(h http.Header, body []byte) error {
			if n := bytes.Count(body, []byte("<li id=")); n != 20 {
				return fmt.Errorf("page has %d list items, want 20", n)
			}
			if !bytes.Contains(body, []byte(`<li id="item-19">ITEM NUMBER 19`)) {
				return fmt.Errorf("page lacks the rendered last item")
			}
			return nil
		},
	},
	{
		Name: "static50k", Module: "hello", Connections: 50,
		Path: staticMount + "/" + staticFile50k, Static: true,
		Servers: []string{"wsgo", "wsgo-disk", "uwsgi", "go-fileserver"},
		Desc:    "GET of a 51,200-byte static file mapped at " + staticMount + " (the application is not called)",
		// Byte for byte, so length and content both (wantBody names a
		// length mismatch first).
		Check: func(h http.Header, body []byte) error {
			return wantBody(body, file50k)
		},
	},
	{
		Name: "cached", Module: "cachedpage", Connections: 50, MaxAge: 60,
		Servers: []string{"wsgo", "wsgo-nocache", "uwsgi"},
		Desc:    "1.9 KB HTML page of 50 rows rendered with str.format, sent with `Cache-Control: max-age=60`; wsgo with `--max-age 60` answers it from its response cache",
		Check: func(h http.Header, body []byte) error {
			// A cache may count the max-age down on a hit.
			if cc := h.Get("Cache-Control"); !strings.HasPrefix(cc, "max-age=") {
				return fmt.Errorf("Cache-Control %q, want max-age=60 (or less, from a cache)", cc)
			}
			if n := bytes.Count(body, []byte("<tr><td>")); n != cachedRows {
				return fmt.Errorf("page has %d rows, want %d", n, cachedRows)
			}
			last := fmt.Sprintf("<tr><td>%d</td><td>%.2f</td></tr>", cachedRows-1, float64(cachedRows-1)*1.25)
			if !bytes.Contains(body, []byte(last)) {
				return fmt.Errorf("page lacks the rendered last row")
			}
			if renderCount(body) == "" {
				return fmt.Errorf("page lacks its render counter")
			}
			return nil
		},
	},
	{
		Name: "fairness", Module: "fairness", Connections: 100, Script: "fairness.lua",
		Flood:   "/slow",
		Servers: []string{"wsgo", "uwsgi", "gunicorn-gthread"},
		Desc: "one client (X-Forwarded-For " + floodAddr + ") floods `/slow` (`time.sleep(0.05)`) while polite clients (" +
			politeAddrs + ") request `/`, one request at a time",
		Check: func(h http.Header, body []byte) error {
			return wantBody(body, []byte("fast\n"))
		},
		FloodCheck: func(h http.Header, body []byte) error {
			return wantBody(body, []byte("slept 50ms\n"))
		},
	},
}

// reRender finds the counter bench/apps/cachedpage.py writes into each page
// it renders.
var reRender = regexp.MustCompile(`<!-- render (\d+) -->`)

// renderCount returns the render counter of a cachedpage page, or "".
func renderCount(body []byte) string {
	if m := reRender.FindSubmatch(body); m != nil {
		return string(m[1])
	}
	return ""
}

// path is the path wrk and the checks request.
func (w workload) path() string {
	if w.Path == "" {
		return "/"
	}
	return w.Path
}

// runs reports whether server s takes part in w.
func (w workload) runs(s server) bool {
	return s.runs(w.Name) && (w.Servers == nil || contains(w.Servers, s.Name))
}

// post64kBody is the body that post64k.lua makes wrk send; loadPost64kBody
// fills it in from the script itself so that the two cannot drift apart.
var post64kBody []byte

// loadPost64kBody reads the string.rep(PATTERN, COUNT) expression out of the
// wrk script and builds the same bytes.
func loadPost64kBody(script string) error {
	src, err := os.ReadFile(script)
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`wrk\.body = string\.rep\("([^"\\]*)", (\d+)\)`).FindSubmatch(src)
	if m == nil {
		return fmt.Errorf("%s: no `wrk.body = string.rep(\"...\", N)` line", script)
	}
	n, _ := strconv.Atoi(string(m[2]))
	post64kBody = bytes.Repeat(m[1], n)
	if len(post64kBody) != 64*1024 {
		return fmt.Errorf("%s: body is %d bytes, want 65536", script, len(post64kBody))
	}
	return nil
}

// wantBody compares a response body with the expected one, describing the
// first difference briefly.
func wantBody(got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	if len(got) != len(want) {
		return fmt.Errorf("body is %d bytes, want %d (starts %q)", len(got), len(want), truncate(got, 60))
	}
	return fmt.Errorf("body differs: got %q, want %q", truncate(got, 60), truncate(want, 60))
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// findWorkload returns the workload called name.
func findWorkload(name string) (workload, bool) {
	for _, w := range workloads {
		if w.Name == name {
			return w, true
		}
	}
	return workload{}, false
}
