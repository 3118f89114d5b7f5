// Package scheduler owns the queue between the HTTP front and the Python
// workers: which request runs next, and which idle worker wakes for it.
//
// It knows nothing of HTTP or Python; it moves opaque jobs. Two rules keep
// the GIL from being passed back and forth needlessly:
//
//   - A worker that finishes a request takes the next queued job itself
//     (TryTake) while it still holds the GIL.
//   - At most one idle worker is woken at a time (it is "searching" until it
//     takes a job or finds the queue empty). When it takes a job and more
//     are queued it wakes the next one, so a burst fans out to the workers
//     it needs — and an app that blocks in I/O, releasing the GIL, still gets
//     every worker — without waking workers that would only queue on the GIL.
//
// With a Priority function, the job that ranks highest at the moment a
// worker takes one runs first, and a job ranked below Background waits
// until no other job is running.
package scheduler

import (
	"sync"
	"time"
)

// Queue hands jobs of type T from producers to a fixed set of workers.
// Its configuration fields must be set before first use.
type Queue[T any] struct {
	// Priority, when set, ranks a queued job at the time now: the highest
	// ranked job is taken first, and equal ranks go in arrival order. It
	// is called with the queue's lock held and must be quick.
	Priority func(job T, now time.Time) int
	// Background is the rank below which a job is only taken when no
	// other job is running.
	Background int
	// Limit, when positive, bounds the queue: a job submitted to a full
	// queue pushes out the lowest ranked job (which may be itself), which
	// is given to Shed, outside the queue's lock.
	Limit int
	Shed  func(job T)
	// Taken, when set, is told the rank at which a worker took job (0
	// without Priority) and when, with the queue's lock held: it must be
	// quick, and must not call the queue.
	Taken func(job T, rank int, now time.Time)

	mu        sync.Mutex
	jobs      ring[T]
	idle      []*Waiter // workers waiting for work, most recently idle last
	searching int       // woken workers that have not taken a job yet
	running   int       // jobs taken whose worker has not come back
	closed    bool
}

// Waiter is one worker's place in the queue's idle list.
type Waiter struct {
	park   func()
	unpark func()
	woken  bool // set by the queue when it wakes this worker
	busy   bool // the worker took a job and has not come back for another
}

// NewWaiter returns the Waiter a worker uses for every Wait. park blocks
// the worker until unpark is called; an unpark that comes first must make
// the next park return at once (a semaphore, or a channel of one). The
// queue never calls them with its lock held.
func NewWaiter(park, unpark func()) *Waiter { return &Waiter{park: park, unpark: unpark} }

// Submit queues job and wakes a worker if none is already on its way. It
// reports false when the queue is closed. When the queue is full, the
// lowest ranked job (job itself, or one that was queued) goes to Shed.
func (q *Queue[T]) Submit(job T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	if q.Limit > 0 && q.jobs.len() >= q.Limit {
		now := time.Now()
		i, rank := q.lowestLocked(now)
		if q.rank(job, now) <= rank {
			q.mu.Unlock()
			q.Shed(job)
			return true
		}
		shed := q.jobs.removeAt(i)
		defer q.Shed(shed) // after the unlock below
	}
	q.jobs.push(job)
	var w *Waiter
	if q.running == 0 || q.rank(job, time.Now()) >= q.Background {
		w = q.wakeLocked()
	}
	q.mu.Unlock()
	if w != nil {
		w.unpark()
	}
	return true
}

func (q *Queue[T]) rank(job T, now time.Time) int {
	if q.Priority == nil {
		return 0
	}
	return q.Priority(job, now)
}

// bestLocked finds the queued job to run next, and its rank: the highest
// ranked, the oldest among equals. It reports false when there is none, or
// when the best is a background job and another is running.
func (q *Queue[T]) bestLocked(now time.Time) (int, int, bool) {
	n := q.jobs.len()
	if n == 0 {
		return 0, 0, false
	}
	if q.Priority == nil {
		return 0, 0, true
	}
	best, bestRank := 0, q.Priority(q.jobs.at(0), now)
	for i := 1; i < n; i++ {
		if r := q.Priority(q.jobs.at(i), now); r > bestRank {
			best, bestRank = i, r
		}
	}
	if bestRank < q.Background && q.running > 0 && !q.closed {
		return 0, 0, false // (once closed, whatever is queued runs, so that the workers can finish)
	}
	return best, bestRank, true
}

// runnableLocked reports whether a queued job may be taken now.
func (q *Queue[T]) runnableLocked() bool {
	_, _, ok := q.bestLocked(time.Now())
	return ok
}

// lowestLocked finds the queued job that ranks lowest, the newest among
// equals (the queue must not be empty).
func (q *Queue[T]) lowestLocked(now time.Time) (int, int) {
	low, lowRank := 0, q.rank(q.jobs.at(0), now)
	for i := 1; i < q.jobs.len(); i++ {
		if r := q.rank(q.jobs.at(i), now); r <= lowRank {
			low, lowRank = i, r
		}
	}
	return low, lowRank
}

// comeBackLocked notes that w finished the job it took, if any.
func (q *Queue[T]) comeBackLocked(w *Waiter) {
	if w.busy {
		w.busy = false
		q.running--
	}
}

// wakeLocked picks an idle worker to wake when jobs wait and no woken worker
// is already coming for them.
func (q *Queue[T]) wakeLocked() *Waiter {
	if q.searching > 0 || q.jobs.len() == 0 || len(q.idle) == 0 {
		return nil
	}
	w := q.idle[len(q.idle)-1]
	q.idle = q.idle[:len(q.idle)-1]
	w.woken = true
	q.searching++
	return w
}

// TryTake returns the next job without waiting. w is the calling worker's
// Waiter: if it was woken to search, it stops searching.
func (q *Queue[T]) TryTake(w *Waiter) (job T, ok bool) {
	q.mu.Lock()
	if w.woken {
		w.woken = false
		q.searching--
	}
	q.comeBackLocked(w)
	var next *Waiter
	if q.jobs.len() > 0 { // an idle worker's look costs no clock read
		now := time.Now()
		if i, rank, found := q.bestLocked(now); found {
			job, ok = q.jobs.removeAt(i), true
			w.busy = true
			q.running++
			if q.Taken != nil {
				q.Taken(job, rank, now)
			}
			next = q.wakeLocked()
		}
	}
	q.mu.Unlock()
	if next != nil {
		next.unpark()
	}
	return job, ok
}

// Wait blocks until the worker is woken because a job is queued, or the
// queue is closed and empty (then it reports false). The job is not taken:
// the worker takes it with TryTake once it is ready to run it, so a job
// waits in the queue, not on one sleeping worker.
func (q *Queue[T]) Wait(w *Waiter) bool {
	q.mu.Lock()
	q.comeBackLocked(w)
	if q.jobs.len() > 0 && q.runnableLocked() {
		if !w.woken {
			w.woken = true
			q.searching++
		}
		q.mu.Unlock()
		return true
	}
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.idle = append(q.idle, w)
	q.mu.Unlock()
	w.park()
	return true
}

// DropWhile removes jobs from the head of the queue for as long as drop
// says so, and returns them. The head is the oldest job, so with a drop
// that tests age it removes every expired job.
func (q *Queue[T]) DropWhile(drop func(T) bool) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	var dropped []T
	for {
		job, ok := q.jobs.peek()
		if !ok || !drop(job) {
			return dropped
		}
		q.jobs.pop()
		dropped = append(dropped, job)
	}
}

// Len is the number of queued jobs.
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.jobs.len()
}

// Close stops new submissions and wakes every idle worker; Wait then
// reports false once the queue has drained.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	idle := q.idle
	q.idle = nil
	for _, w := range idle {
		w.woken = true
		q.searching++
	}
	q.mu.Unlock()
	for _, w := range idle {
		w.unpark()
	}
}

// ring is a growable FIFO of jobs.
type ring[T any] struct {
	buf        []T
	head, size int
}

func (r *ring[T]) len() int { return r.size }

func (r *ring[T]) push(v T) {
	if r.size == len(r.buf) {
		grown := make([]T, max(16, 2*len(r.buf)))
		for i := 0; i < r.size; i++ {
			grown[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = grown, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
}

func (r *ring[T]) peek() (v T, ok bool) {
	if r.size == 0 {
		return v, false
	}
	return r.buf[r.head], true
}

func (r *ring[T]) pop() (v T, ok bool) {
	if r.size == 0 {
		return v, false
	}
	return r.removeAt(0), true
}

// at returns the i-th oldest job.
func (r *ring[T]) at(i int) T { return r.buf[(r.head+i)%len(r.buf)] }

// removeAt removes and returns the i-th oldest job, keeping the others in
// order.
func (r *ring[T]) removeAt(i int) T {
	n := len(r.buf)
	v := r.at(i)
	for j := i; j > 0; j-- { // close the gap from the head's side
		r.buf[(r.head+j)%n] = r.buf[(r.head+j-1)%n]
	}
	var zero T
	r.buf[r.head] = zero
	r.head = (r.head + 1) % n
	r.size--
	return v
}
