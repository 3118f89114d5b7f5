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
package scheduler

import "sync"

// Queue hands jobs of type T from producers to a fixed set of workers.
type Queue[T any] struct {
	mu        sync.Mutex
	jobs      ring[T]
	idle      []*Waiter // workers waiting for work, most recently idle last
	searching int       // woken workers that have not taken a job yet
	closed    bool
}

// Waiter is one worker's place in the queue's idle list.
type Waiter struct {
	park   func()
	unpark func()
	woken  bool // set by the queue when it wakes this worker
}

// NewWaiter returns the Waiter a worker uses for every Wait. park blocks
// the worker until unpark is called; an unpark that comes first must make
// the next park return at once (a semaphore, or a channel of one). The
// queue never calls them with its lock held.
func NewWaiter(park, unpark func()) *Waiter { return &Waiter{park: park, unpark: unpark} }

// Submit queues job and wakes a worker if none is already on its way. It
// reports false when the queue is closed.
func (q *Queue[T]) Submit(job T) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.jobs.push(job)
	w := q.wakeLocked()
	q.mu.Unlock()
	if w != nil {
		w.unpark()
	}
	return true
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
	job, ok = q.jobs.pop()
	var next *Waiter
	if ok {
		next = q.wakeLocked()
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
	if q.jobs.len() > 0 {
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
	var zero T
	v = r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return v, true
}
