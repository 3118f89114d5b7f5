package main

import (
	"testing"
	"time"
)

const sampleWrk = `Running 10s test @ http://127.0.0.1:8000/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.23ms  404.00us  12.34ms   85.30%
    Req/Sec    40.12k     2.10k   45.00k    99.00%
  Latency Distribution
     50%    1.10ms
     75%    1.40ms
     90%    1.80ms
     99%  850.00us
  401234 requests in 10.00s, 29.46MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  40123.40
Transfer/sec:      2.95MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(sampleWrk)
	if err != nil {
		t.Fatal(err)
	}
	if r.ReqPerSec != 40123.40 || r.P99 != 850*time.Microsecond || r.Requests != 401234 {
		t.Errorf("got %.2f req/s, p99 %s, %d requests", r.ReqPerSec, r.P99, r.Requests)
	}
	if r.Read != 3 || r.Timeout != 2 || r.Non2xx != 7 || r.errors() != 12 {
		t.Errorf("errors: %+v", r)
	}
	if got := r.errorText(); got != "7 non-2xx, 3 read, 2 timeout" {
		t.Errorf("errorText() = %q", got)
	}
	if _, err := parseWrk("Requests/sec: 1.0\n"); err == nil {
		t.Error("output without a latency distribution was accepted")
	}
}

func TestFormatting(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1000000: "1,000,000"} {
		if got := fmtCount(n); got != want {
			t.Errorf("fmtCount(%d) = %q, want %q", n, got, want)
		}
	}
	if got := fmtDur(1500 * time.Microsecond); got != "1.50 ms" {
		t.Errorf("fmtDur = %q", got)
	}
}

func TestPick(t *testing.T) {
	got, err := pick("django, hello", workloadNames())
	if err != nil || len(got) != 2 || got[0] != "hello" || got[1] != "django" {
		t.Errorf("pick = %v, %v", got, err)
	}
	if _, err := pick("nope", workloadNames()); err == nil {
		t.Error("unknown workload accepted")
	}
}

func TestPost64kBody(t *testing.T) {
	if err := loadPost64kBody("post64k.lua"); err != nil {
		t.Fatal(err)
	}
}
