package scheduler

import (
	"sync"
	"testing"
)

func TestRingKeepsOrderAcrossGrowth(t *testing.T) {
	var r ring[int]
	pushed, popped := 0, 0
	for round := 0; round < 5; round++ {
		for i := 0; i < 40; i++ {
			r.push(pushed)
			pushed++
		}
		for i := 0; i < 30; i++ {
			v, ok := r.pop()
			if !ok || v != popped {
				t.Fatalf("pop = %d, %v; want %d", v, ok, popped)
			}
			popped++
		}
	}
	if r.len() != pushed-popped {
		t.Fatalf("len = %d, want %d", r.len(), pushed-popped)
	}
}

// chanWaiter is a Waiter parked on a channel of one.
func chanWaiter() (*Waiter, chan struct{}) {
	wake := make(chan struct{}, 1)
	return NewWaiter(func() { <-wake }, func() { wake <- struct{}{} }), wake
}

func TestFIFO(t *testing.T) {
	q := &Queue[int]{}
	w, _ := chanWaiter()
	for i := 0; i < 100; i++ {
		q.Submit(i)
	}
	for i := 0; i < 100; i++ {
		got, ok := q.TryTake(w)
		if !ok || got != i {
			t.Fatalf("take %d = %d, %v", i, got, ok)
		}
	}
	if _, ok := q.TryTake(w); ok {
		t.Fatal("took from an empty queue")
	}
}

// TestWakesOneWorkerAtATime checks the rule that keeps workers off the GIL:
// a burst of jobs wakes one idle worker, and each worker that takes a job
// while more wait wakes the next.
func TestWakesOneWorkerAtATime(t *testing.T) {
	q := &Queue[int]{}
	var waiters []*Waiter
	var wakes []chan struct{}
	for i := 0; i < 3; i++ {
		w, wake := chanWaiter()
		waiters = append(waiters, w)
		wakes = append(wakes, wake)
	}
	q.idle = append(q.idle, waiters...)

	q.Submit(1)
	q.Submit(2)
	q.Submit(3)
	woken := countWoken(wakes)
	if woken != 1 || q.searching != 1 {
		t.Fatalf("after a burst of 3: %d woken, %d searching; want 1, 1", woken, q.searching)
	}
	// The most recently idle worker goes first.
	<-wakes[2]
	if _, ok := q.TryTake(waiters[2]); !ok {
		t.Fatal("woken worker found no job")
	}
	if woken := countWoken(wakes[:2]); woken != 1 {
		t.Fatalf("taking with jobs left woke %d more workers, want 1", woken)
	}
}

func countWoken(wakes []chan struct{}) int {
	n := 0
	for _, w := range wakes {
		if len(w) > 0 {
			n++
		}
	}
	return n
}

func TestCloseDrainsThenStops(t *testing.T) {
	q := &Queue[int]{}
	const workers, jobs = 4, 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int]bool{}
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, _ := chanWaiter()
			for {
				job, ok := q.TryTake(w)
				if !ok {
					if !q.Wait(w) {
						return
					}
					continue
				}
				mu.Lock()
				seen[job] = true
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < jobs; i++ {
		if !q.Submit(i) {
			t.Fatalf("submit %d refused before Close", i)
		}
	}
	q.Close()
	wg.Wait()
	if len(seen) != jobs {
		t.Fatalf("ran %d jobs, want %d", len(seen), jobs)
	}
	if q.Submit(-1) {
		t.Fatal("Submit accepted a job after Close")
	}
}
