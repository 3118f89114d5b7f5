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

// A workload is one Python application under bench/apps together with how
// wrk drives it and how a single response from it is recognised as correct.
type workload struct {
	// Name is the workload's identifier in -only and in BENCHMARKS.md.
	Name string
	// Module is the module in bench/apps that exposes `application`.
	Module string
	// Desc says in a few words what the application does.
	Desc string
	// Connections is wrk's -c for this workload, the same for every server.
	Connections int
	// Script is a wrk Lua script in the bench directory, or "".
	Script string
	// Method is the HTTP method of the correctness check ("" means GET).
	Method string
	// Check verifies one response (status already known to be 200).
	Check func(h http.Header, body []byte) error
}

// Bodies that the checks compare against, built once.
var (
	body100k = func() []byte {
		b := make([]byte, 100*1024)
		for i := range b {
			b[i] = byte(i % 251)
		}
		return b
	}()
	stream1m = bytes.Repeat([]byte("x"), 100*10*1024)
)

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
