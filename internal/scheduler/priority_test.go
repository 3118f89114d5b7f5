package scheduler

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// ranked is a queue whose jobs are names ranked by a table the test may
// change between takes.
type ranked struct {
	q    *Queue[string]
	mu   sync.Mutex
	rank map[string]int
	shed []string
}

func newRanked(background, limit int) *ranked {
	r := &ranked{rank: map[string]int{}}
	r.q = &Queue[string]{
		Priority: func(job string, _ time.Time) int {
			// Called with the queue's lock held; the table has its own.
			r.mu.Lock()
			defer r.mu.Unlock()
			return r.rank[job]
		},
		Background: background,
		Limit:      limit,
		Shed: func(job string) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.shed = append(r.shed, job)
		},
	}
	return r
}

func (r *ranked) set(job string, rank int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rank[job] = rank
}

// submit ranks and queues jobs (name, rank, name, rank...).
func (r *ranked) submit(t *testing.T, jobs ...any) {
	t.Helper()
	for i := 0; i+1 < len(jobs); i += 2 {
		name := jobs[i].(string)
		r.set(name, jobs[i+1].(int))
		if !r.q.Submit(name) {
			t.Fatalf("Submit(%s) refused", name)
		}
	}
}

func (r *ranked) shedJobs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.shed)
}

// takeAll takes jobs with w until none is runnable, each worker coming
// back before the next take (one worker running them in turn).
func takeAll(q *Queue[string], w *Waiter) []string {
	var got []string
	for {
		job, ok := q.TryTake(w)
		if !ok {
			return got
		}
		got = append(got, job)
	}
}

func TestPriorityOrder(t *testing.T) {
	r := newRanked(-7000, 0)
	w, _ := chanWaiter()
	r.submit(t, "low", -500, "high", 1000, "mid", 500, "top", 2000, "negative", -6999)
	if got, want := takeAll(r.q, w), []string{"top", "high", "mid", "low", "negative"}; !slices.Equal(got, want) {
		t.Errorf("took %v, want %v", got, want)
	}
}

func TestPriorityTiesFIFO(t *testing.T) {
	r := newRanked(-7000, 0)
	w, _ := chanWaiter()
	r.submit(t, "a", 1000, "b", 500, "c", 1000, "d", 500, "e", 1000, "f", -1000, "g", 500)
	if got, want := takeAll(r.q, w), []string{"a", "c", "e", "b", "d", "g", "f"}; !slices.Equal(got, want) {
		t.Errorf("took %v, want %v", got, want)
	}
}

// TestPriorityRecomputedAtTake: the ranks are asked again at every take,
// so a queued job sinks or rises with its client's behaviour meanwhile.
func TestPriorityRecomputedAtTake(t *testing.T) {
	r := newRanked(-7000, 0)
	w, _ := chanWaiter()
	r.submit(t, "x1", 1000, "y", 1000, "x2", 1000)
	if job, _ := r.q.TryTake(w); job != "x1" {
		t.Fatalf("first take = %s, want x1", job)
	}
	r.set("x2", -1000) // x2's client got busier
	r.set("z", 3000)
	r.q.Submit("z")
	if got, want := takeAll(r.q, w), []string{"z", "y", "x2"}; !slices.Equal(got, want) {
		t.Errorf("took %v, want %v", got, want)
	}
}

// TestPriorityBackground: a job ranked below Background is taken only when
// no other job is running; at Background it is an ordinary job.
func TestPriorityBackground(t *testing.T) {
	r := newRanked(-7000, 0)
	w1, _ := chanWaiter()
	w2, _ := chanWaiter()
	r.submit(t, "busy", 1000, "bg", -7001, "edge", -7000)
	if job, _ := r.q.TryTake(w1); job != "busy" {
		t.Fatalf("first take = %s, want busy", job)
	}
	// w1 is running "busy": w2 may take the job at the line, not the one
	// below it.
	if job, ok := r.q.TryTake(w2); !ok || job != "edge" {
		t.Fatalf("take beside a running job = %q, %v; want edge", job, ok)
	}
	// Both are running now; w2 comes back, w1 still runs.
	if job, ok := r.q.TryTake(w2); ok {
		t.Fatalf("took background job %q while another job runs", job)
	}
	if n := r.q.Len(); n != 1 {
		t.Fatalf("Len = %d, want the background job queued", n)
	}
	// Once w1 comes back as well, nothing runs: the background job goes.
	if job, ok := r.q.TryTake(w1); !ok || job != "bg" {
		t.Fatalf("take with no job running = %q, %v; want bg", job, ok)
	}
}

// TestPriorityBackgroundWakes: submitting a background job wakes an idle
// worker only when nothing runs, and a worker that finds only background
// jobs while another runs goes idle until it is woken.
func TestPriorityBackgroundWakes(t *testing.T) {
	r := newRanked(-7000, 0)
	w1, _ := chanWaiter()
	w2, wake2 := chanWaiter()
	r.submit(t, "busy", 1000)
	if job, _ := r.q.TryTake(w1); job != "busy" {
		t.Fatal("busy not taken")
	}
	// w2 finds nothing and goes idle (Wait would park it: put it there as
	// Wait does, without blocking the test).
	r.q.mu.Lock()
	r.q.idle = append(r.q.idle, w2)
	r.q.mu.Unlock()
	r.submit(t, "bg", -9000)
	if len(wake2) != 0 {
		t.Fatal("a background job woke a worker while another job runs")
	}
	// w1 finishes "busy" and takes the background job itself.
	if job, ok := r.q.TryTake(w1); !ok || job != "bg" {
		t.Fatalf("w1 after busy took %q, %v; want bg", job, ok)
	}
	// Nothing runs: a background job wakes the idle worker at once.
	if _, ok := r.q.TryTake(w1); ok {
		t.Fatal("took from an empty queue")
	}
	r.submit(t, "bg2", -9000)
	if len(wake2) != 1 {
		t.Fatal("a background job submitted with nothing running woke no worker")
	}
	<-wake2
	if job, ok := r.q.TryTake(w2); !ok || job != "bg2" {
		t.Fatalf("woken worker took %q, %v; want bg2", job, ok)
	}
}

// TestPriorityWaitSkipsBackground: Wait does not report a background job
// as work while another job runs, so the worker parks instead of spinning.
func TestPriorityWaitSkipsBackground(t *testing.T) {
	r := newRanked(-7000, 0)
	w1, _ := chanWaiter()
	parked := make(chan struct{})
	wake := make(chan struct{}, 1)
	w2 := NewWaiter(func() { close(parked); <-wake }, func() { wake <- struct{}{} })
	r.submit(t, "busy", 1000, "bg", -9000)
	if job, _ := r.q.TryTake(w1); job != "busy" {
		t.Fatal("busy not taken")
	}
	waited := make(chan bool, 1)
	go func() { waited <- r.q.Wait(w2) }()
	select {
	case <-parked:
	case <-waited:
		t.Fatal("Wait returned with only a background job queued and another running")
	case <-time.After(5 * time.Second):
		t.Fatal("Wait neither parked nor returned")
	}
	// w1 comes back with the background job still queued: it takes it.
	if job, ok := r.q.TryTake(w1); !ok || job != "bg" {
		t.Fatalf("w1 took %q, %v; want bg", job, ok)
	}
	r.q.Close()
	if !<-waited {
		t.Error("Wait reported closed while w2 had been woken")
	}
}

// TestPriorityLimitShedsLowest: a full queue pushes out its lowest ranked
// job, the newest among equals, or the new job itself when that ranks
// lowest (or equal to the lowest).
func TestPriorityLimitShedsLowest(t *testing.T) {
	r := newRanked(-7000, 3)
	w, _ := chanWaiter()
	r.submit(t, "a", 1000, "bot", -7000, "b", 1000)
	r.submit(t, "c", 1000) // full: the bot goes
	if got := r.shedJobs(); !slices.Equal(got, []string{"bot"}) {
		t.Fatalf("shed %v, want [bot]", got)
	}
	r.submit(t, "search", 500) // lower than any queued: itself
	if got := r.shedJobs(); !slices.Equal(got, []string{"bot", "search"}) {
		t.Fatalf("shed %v, want [bot search]", got)
	}
	r.submit(t, "d", 1000) // equal to the lowest: itself, the newest
	if got := r.shedJobs(); !slices.Equal(got, []string{"bot", "search", "d"}) {
		t.Fatalf("shed %v, want [bot search d]", got)
	}
	r.set("a", 0) // ranks are taken afresh when the queue is full
	r.submit(t, "e", 1000)
	if got := r.shedJobs(); !slices.Equal(got, []string{"bot", "search", "d", "a"}) {
		t.Fatalf("shed %v, want [bot search d a]", got)
	}
	r.set("c", 200)
	r.set("b", 200)
	r.submit(t, "f", 300) // b and c tie lowest: the newer, c, goes
	if got := r.shedJobs(); !slices.Equal(got, []string{"bot", "search", "d", "a", "c"}) {
		t.Fatalf("shed %v, want [bot search d a c]", got)
	}
	if n := r.q.Len(); n != 3 {
		t.Errorf("Len = %d, want the limit, 3", n)
	}
	if got, want := takeAll(r.q, w), []string{"e", "f", "b"}; !slices.Equal(got, want) {
		t.Errorf("took %v, want %v", got, want)
	}
}

// TestPriorityShedOutsideLock: Shed may use the queue (the front answers
// the request, which can lead to more submissions), so it is called
// without the queue's lock.
func TestPriorityShedOutsideLock(t *testing.T) {
	q := &Queue[int]{Priority: func(job int, _ time.Time) int { return job }, Limit: 1}
	var lens []int
	q.Shed = func(int) { lens = append(lens, q.Len()) } // deadlocks if called with the lock held
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.Submit(5)
		q.Submit(1) // itself
		q.Submit(9) // pushes 5 out
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Submit deadlocked: Shed was called with the queue's lock held")
	}
	if !slices.Equal(lens, []int{1, 1}) {
		t.Errorf("queue lengths seen by Shed: %v, want [1 1]", lens)
	}
}

// TestPriorityCloseRunsBackground: once the queue is closed, background
// jobs run even while another job runs, so that the workers can finish.
func TestPriorityCloseRunsBackground(t *testing.T) {
	r := newRanked(-7000, 0)
	w1, _ := chanWaiter()
	w2, _ := chanWaiter()
	r.submit(t, "busy", 1000, "bg1", -9000, "bg2", -8000)
	if job, _ := r.q.TryTake(w1); job != "busy" {
		t.Fatal("busy not taken")
	}
	if _, ok := r.q.TryTake(w2); ok {
		t.Fatal("took a background job while another runs")
	}
	r.q.Close()
	// w1 is still running "busy".
	if job, ok := r.q.TryTake(w2); !ok || job != "bg2" {
		t.Fatalf("after Close took %q, %v; want bg2 (the higher background job)", job, ok)
	}
	if !r.q.Wait(w2) {
		t.Fatal("Wait reported the queue drained with bg1 still queued")
	}
	if job, ok := r.q.TryTake(w2); !ok || job != "bg1" {
		t.Fatalf("after Close took %q, %v; want bg1", job, ok)
	}
	if r.q.Wait(w2) {
		t.Error("Wait did not report the closed queue drained")
	}
}

// TestPriorityDropWhileKeepsArrivalOrder: the queue keeps arrival order
// under its priorities, so the housekeeper's DropWhile sees the oldest
// first.
func TestPriorityDropWhileKeepsArrivalOrder(t *testing.T) {
	r := newRanked(-7000, 0)
	r.submit(t, "old-low", -100, "old-high", 1000, "new-low", -100, "new-high", 1000)
	w, _ := chanWaiter()
	if job, _ := r.q.TryTake(w); job != "old-high" {
		t.Fatalf("took %s, want old-high", job)
	}
	old := map[string]bool{"old-low": true, "old-high": true}
	if got := r.q.DropWhile(func(job string) bool { return old[job] }); !slices.Equal(got, []string{"old-low"}) {
		t.Errorf("dropped %v, want [old-low]", got)
	}
	if got, want := takeAll(r.q, w), []string{"new-high", "new-low"}; !slices.Equal(got, want) {
		t.Errorf("took %v, want %v", got, want)
	}
}

// TestPriorityConcurrent runs workers against a ranked queue with
// background jobs under the race detector: every job runs exactly once,
// and no background job is taken while another job runs. The workers take
// jobs under a lock of the test's, so that its count of running jobs is
// the queue's (a job runs from its take to its worker's next take).
func TestPriorityConcurrent(t *testing.T) {
	const workers, jobs = 4, 2000
	var mu sync.Mutex
	running, violations, background := 0, 0, 0
	seen := map[int]int{}
	rank := func(job int) int {
		if job%10 == 0 {
			return -9000
		}
		return job % 7 * 100
	}
	q := &Queue[int]{Priority: func(job int, _ time.Time) int { return rank(job) }, Background: -7000}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, _ := chanWaiter()
			busy := false
			for {
				mu.Lock()
				if busy {
					running--
					busy = false
				}
				job, ok := q.TryTake(w)
				if ok {
					if rank(job) < -7000 {
						background++
						if running > 0 {
							violations++
						}
					}
					running++
					busy = true
					seen[job]++
				}
				mu.Unlock()
				if !ok {
					if !q.Wait(w) {
						return
					}
					continue
				}
				time.Sleep(time.Duration(job%3) * time.Microsecond)
			}
		}()
	}
	for i := 0; i < jobs; i++ {
		q.Submit(i)
	}
	// Let the workers drain the queue before closing it (once it is
	// closed the background rule is off).
	waitDrained := time.Now().Add(10 * time.Second)
	for q.Len() > 0 && time.Now().Before(waitDrained) {
		time.Sleep(time.Millisecond)
	}
	if n := q.Len(); n > 0 {
		t.Errorf("%d jobs still queued after 10s: a worker was not woken", n)
	}
	q.Close()
	wg.Wait()
	if len(seen) != jobs {
		t.Errorf("ran %d distinct jobs, want %d", len(seen), jobs)
	}
	for job, n := range seen {
		if n != 1 {
			t.Errorf("job %d ran %d times", job, n)
		}
	}
	if background != jobs/10 || violations > 0 {
		t.Errorf("%d of %d background jobs were taken while another job ran", violations, background)
	}
}

// TestTakenReportsRank: Taken hears each job's rank at the moment it was
// taken, after the ranks changed while it waited.
func TestTakenReportsRank(t *testing.T) {
	r := newRanked(-7000, 0)
	taken := map[string]int{}
	r.q.Taken = func(job string, rank int, now time.Time) {
		if now.IsZero() {
			t.Errorf("Taken(%s) without a time", job)
		}
		taken[job] = rank
	}
	w, _ := chanWaiter()
	r.submit(t, "a", 1000, "b", 500)
	r.set("b", 2000)
	if got, want := takeAll(r.q, w), []string{"b", "a"}; !slices.Equal(got, want) {
		t.Fatalf("order = %v, want %v", got, want)
	}
	if taken["a"] != 1000 || taken["b"] != 2000 || len(taken) != 2 {
		t.Errorf("Taken saw %v", taken)
	}
}
