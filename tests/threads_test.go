package tests

import (
	"encoding/json"
	"sort"
	"sync"
	"testing"
)

// TestWorkerThreads: --workers 4 runs the app on at most 4 Python threads,
// and each keeps its threading.local state between requests.
func TestWorkerThreads(t *testing.T) {
	t.Parallel()
	s := startServer(t, "threadapp", "--workers", "4")

	const goroutines, perGoroutine = 8, 25
	type answer struct {
		Ident int64 `json:"ident"`
		Count int   `json:"count"`
	}
	var (
		mu      sync.Mutex
		answers []answer
		wg      sync.WaitGroup
		errs    = make(chan string, goroutines)
	)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perGoroutine; i++ {
				resp, err := client.Get(s.URL + "/")
				if err != nil {
					errs <- err.Error()
					return
				}
				var a answer
				err = json.NewDecoder(resp.Body).Decode(&a)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 {
					errs <- "bad answer: " + resp.Status
					return
				}
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if len(answers) != goroutines*perGoroutine {
		t.Fatalf("got %d answers", len(answers))
	}

	counts := map[int64][]int{}
	for _, a := range answers {
		counts[a.Ident] = append(counts[a.Ident], a.Count)
	}
	if len(counts) > 4 {
		t.Errorf("requests ran on %d distinct threads, want at most 4 (--workers 4)", len(counts))
	}
	// Each thread's counter went 1, 2, 3, ... without repeats or gaps: the
	// thread-local survived between requests and no two threads shared it.
	for ident, cs := range counts {
		sort.Ints(cs)
		for i, c := range cs {
			if c != i+1 {
				t.Errorf("thread %d: local counters %v, want 1..%d", ident, cs, len(cs))
				break
			}
		}
	}
	t.Logf("%d threads served %d requests", len(counts), len(answers))
}
