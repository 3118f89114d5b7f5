package tests

import (
	"strings"
	"testing"
	"time"
)

// TestAbandonedRequestsAreSkipped: a request whose client hangs up while it
// waits in the queue is not run; the access log shows it as 499 with no
// worker, and the worker goes straight on to the requests behind it.
func TestAbandonedRequestsAreSkipped(t *testing.T) {
	t.Parallel()
	s := startServer(t, "opsapp", "--workers", "1")

	// Occupy the only worker for long enough that the three impatient
	// clients below give up before it is free, even on a loaded machine.
	busy := make(chan string, 1)
	go func() {
		_, body, _ := fetch(freshClient(15*time.Second), s.URL+"/sleep?s=3")
		busy <- body
	}()
	s.WaitStderr(t, "opsapp: sleeping")
	// Three clients give up while their requests wait behind it.
	impatient := freshClient(300 * time.Millisecond)
	for i := 0; i < 3; i++ {
		if _, _, err := fetch(impatient, s.URL+"/abandoned"); err == nil {
			t.Fatal("a request was answered while the only worker was busy")
		}
	}
	if body := <-busy; body != "slept" {
		t.Fatalf("the busy request answered %q", body)
	}
	if status, body, err := fetch(freshClient(5*time.Second), s.URL+"/after"); err != nil || status != 200 || body != "ok" {
		t.Fatalf("request after the abandoned ones: %d %q %v", status, body, err)
	}
	s.WaitStdout(t, `"GET /after HTTP/1.1" 200`)
	if n := strings.Count(s.Stdout(), `"GET /abandoned HTTP/1.1" 499 0`); n != 3 {
		t.Errorf("access log has %d lines with 499 for the abandoned requests, want 3:\n%s", n, s.Stdout())
	}
	if strings.Contains(s.Stdout(), `"GET /abandoned HTTP/1.1" 200`) {
		t.Error("the app ran an abandoned request")
	}
}
