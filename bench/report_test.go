package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestJudgeAcrossWorkloads checks the cached targets: hits against wsgo's
// own hello figure, and the ratio to the uncached page for information.
func TestJudgeAcrossWorkloads(t *testing.T) {
	res := func(name string, rps float64) result {
		s, _ := findServer(name)
		return result{Server: s, Wrk: wrkResult{ReqPerSec: rps}}
	}
	rep := &report{Results: map[string][]result{
		"hello":  {res("wsgo", 40000)},
		"cached": {res("wsgo", 90000), res("wsgo-nocache", 15000)},
	}}
	c := &config{only: []string{"hello", "cached"}}
	var got []string
	for _, tg := range targets() {
		if tg.Workload == "cached" {
			desc, measured, verdict := c.judge(rep, tg)
			got = append(got, desc+" | "+measured+" | "+verdict)
		}
	}
	want := []string{
		"cached: wsgo --workers 16 --max-age 60 ≥ 2 × wsgo --workers 16 on hello | 90000 vs 40000 (wsgo --workers 16 on hello) req/s = 2.25× | PASS",
		"cached: wsgo --workers 16 --max-age 60 ÷ wsgo --workers 16 (no cache) (for information) | 90000 vs 15000 (wsgo --workers 16 (no cache)) req/s = 6.00× | info",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	c.only = []string{"cached"}
	rep.Results["hello"] = nil
	for _, tg := range targets() {
		if tg.PeerWorkload == "hello" {
			if _, measured, verdict := c.judge(rep, tg); verdict != "n/a" || !strings.Contains(measured, "hello was not run") {
				t.Errorf("without hello: %q, %q", measured, verdict)
			}
		}
	}
}

// TestCheckCaching runs the cache check against a page that is rendered
// afresh on every request and against one that is always the same.
func TestCheckCaching(t *testing.T) {
	w, _ := findWorkload("cached")
	var n atomic.Int64
	page := func(render int64) []byte {
		var b strings.Builder
		for i := 0; i < cachedRows; i++ {
			fmt.Fprintf(&b, "<tr><td>%d</td><td>%.2f</td></tr>\n", i, float64(i)*1.25)
		}
		fmt.Fprintf(&b, "<!-- render %d -->\n", render)
		return []byte(b.String())
	}
	fresh := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Cache-Control", "max-age=60")
		rw.Write(page(n.Add(1)))
	}))
	defer fresh.Close()
	same := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Cache-Control", "max-age=60")
		rw.Write(page(1))
	}))
	defer same.Close()
	if err := checkResponse(fresh.URL, w); err != nil {
		t.Fatalf("check of a good page: %v", err)
	}
	for _, tc := range []struct {
		url     string
		cached  bool
		wantErr bool
	}{
		{fresh.URL, false, false}, {fresh.URL, true, true},
		{same.URL, true, false}, {same.URL, false, true},
	} {
		if err := checkCaching(tc.url, w, tc.cached); (err != nil) != tc.wantErr {
			t.Errorf("checkCaching(%s, cached %v) = %v", tc.url, tc.cached, err)
		}
	}
}
