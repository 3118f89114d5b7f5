package tests

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsgo/internal/procstat"
)

// workerRSSKB reads the resident set size of the server's worker process
// (the one that runs Python), not of the supervisor that started it.
func workerRSSKB(t testing.TB, s *server) int64 {
	t.Helper()
	kids, err := procstat.Children(s.PID())
	if err != nil || len(kids) != 1 {
		t.Fatalf("want one worker process under the supervisor, found %v (%v)", kids, err)
	}
	m, err := procstat.ReadMemory(kids[0])
	if err != nil {
		t.Fatal(err)
	}
	return m.RSS
}

// TestMemoryStable sends many small requests and checks the server's RSS
// stops growing after warm-up. Not parallel: it measures the process alone.
// It runs the build without the race detector when there is one (see
// plainBin): the detector's own bookkeeping, outside Go's heap, grows with
// the requests served (2 kB a request with hello, while the Go heap, the
// goroutines and the plain build's RSS stay flat).
func TestMemoryStable(t *testing.T) {
	t.Setenv("WSGO_BIN", plainBin(t))
	s := startServer(t, "hello", "--workers", "4")
	var dials atomic.Int32
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 8,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	defer c.CloseIdleConnections()

	send := func(total int) {
		t.Helper()
		const workers = 4
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < total/workers; i++ {
					resp, err := c.Get(s.URL + "/")
					if err == nil {
						_, err = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if err == nil && resp.StatusCode != 200 {
							err = &statusError{resp.Status}
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}

	start := time.Now()
	send(5000)
	warm := workerRSSKB(t, s)
	send(15000)
	end := workerRSSKB(t, s)
	t.Logf("RSS after 5,000 requests: %d kB, after 20,000: %d kB (%v, %d connections)", warm, end, time.Since(start), dials.Load())
	if growth := end - warm; growth > 8*1024 {
		t.Errorf("RSS grew by %d kB over 15,000 requests after warm-up, want < 8 MB", growth)
	}
}

type statusError struct{ status string }

func (e *statusError) Error() string { return "status " + e.status }
