// Package cron runs the app's background jobs, the functions decorated with
// @wsgo.timer and @wsgo.cron, in the first worker process.
//
// It owns when a job is due (a timer every period from the scheduler's
// start, a cron spec at each matching minute of local time), the job
// threads (one per job, a goroutine locked to its OS thread with its own
// Python thread state, never a request worker), one run at a time per job
// (a run that is due while the previous one still runs is skipped and
// logged), --cron-timeout, and stopping the jobs at shutdown.
//
// It must not touch the request side: the queue, the request workers and
// their housekeeper (internal/scheduler, internal/wsgi). It reaches Python
// only through package python (no cgo here), and it does not decide which
// process runs jobs: the caller starts it in the first one only.
package cron

import (
	"log/slog"
	"runtime"
	"time"

	"wsgo/internal/python"
)

const (
	// retryInterrupt is how soon to try again when a timed-out run could
	// not be interrupted (it had not yet entered Python, or had just left).
	retryInterrupt = 100 * time.Millisecond
	// shutdownGrace is how long before the shutdown deadline the runs still
	// in progress are interrupted, so that they can come back before it.
	shutdownGrace = time.Second
)

// Scheduler runs the jobs of one worker process until Stop.
type Scheduler struct {
	jobs     []*job
	timeout  time.Duration
	log      *slog.Logger
	plan     plan
	monitor  *python.Thread // the scheduler's own thread, from which it interrupts jobs
	seq      uint64         // the latest run number
	finished chan finished  // from the job threads; room for one run of each job
	stop     chan time.Time // Stop's deadline
	done     chan struct{}
}

// job is one job, its thread and its run in progress. The fields after
// exited belong to the scheduler's goroutine.
type job struct {
	python.Job
	entry
	runs   chan uint64    // run numbers for the job's thread; closed at shutdown
	thread *python.Thread // set by the job's goroutine before it is ready
	exited chan struct{}  // closed once the job's thread is freed

	run         uint64    // the run in progress; 0: none
	started     time.Time // when it was started
	interruptAt time.Time // when to raise the timeout in it; zero once raised
	stuckAt     time.Time // when to report it stuck; zero once reported
	abandoned   bool      // given up on at shutdown
}

// finished is a job thread's report that a run has returned.
type finished struct {
	job *job
	run uint64
	err error
}

// Start runs jobs until Stop, each on a thread of its own; a run longer
// than timeout (0: no limit) gets wsgo.RequestTimeoutException raised in
// it. It returns nil, and starts nothing, when there are no jobs. Jobs
// whose spec is invalid are logged and left out. python.Start must have
// succeeded.
func Start(jobs []python.Job, timeout time.Duration, log *slog.Logger) *Scheduler {
	s := &Scheduler{timeout: timeout, log: log, stop: make(chan time.Time), done: make(chan struct{})}
	for _, pj := range jobs {
		j := &job{Job: pj, runs: make(chan uint64, 1), exited: make(chan struct{})}
		if pj.Period > 0 {
			j.period = pj.Period
		} else {
			j.spec = SpecOf(pj.Cron)
			if err := j.spec.Validate(); err != nil {
				log.Error("cron job left out: invalid schedule", "job", pj.Name, "err", err)
				continue
			}
		}
		s.jobs = append(s.jobs, j)
	}
	if len(s.jobs) == 0 {
		return nil
	}
	s.finished = make(chan finished, len(s.jobs))
	ready := make(chan struct{})
	for _, j := range s.jobs {
		go s.runJob(j, ready)
	}
	for range s.jobs {
		<-ready
	}
	go s.loop(ready)
	<-ready
	return s
}

// Stop ends the scheduling: no run starts after it. Runs in progress may
// go on until shortly before deadline (shutdownGrace, or at once if it is
// nearer); then they get wsgo.RequestTimeoutException, and those that
// have still not returned at deadline are abandoned (their threads are
// left as they are). Stop returns once every job thread that was not
// abandoned is freed; python.Finalize may run after it. Call it once; a
// nil Scheduler does nothing.
func (s *Scheduler) Stop(deadline time.Time) {
	if s == nil {
		return
	}
	s.stop <- deadline
	<-s.done
}

// runJob is the life of a job's thread: it runs the runs it is sent, one
// at a time, until runs is closed. The goroutine keeps its OS thread, so
// the job's Python thread state (and its threading.local data) lasts.
func (s *Scheduler) runJob(j *job, ready chan<- struct{}) {
	runtime.LockOSThread()
	j.thread = python.NewThread()
	ready <- struct{}{}
	for run := range j.runs {
		err := j.thread.RunJob(j.Job, run)
		s.finished <- finished{job: j, run: run, err: err}
	}
	j.thread.Close()
	close(j.exited)
}

// loop is the scheduler's goroutine: it starts runs when they are due,
// enforces the timeout and, after Stop, winds the jobs down.
func (s *Scheduler) loop(ready chan<- struct{}) {
	defer close(s.done)
	runtime.LockOSThread()
	s.monitor = python.NewThread()
	defer s.monitor.Close()

	now := time.Now()
	s.plan.start(now, time.Local, s.jobs)
	for _, j := range s.jobs {
		s.log.Info("cron job scheduled", "job", j.Name, "schedule", j.entry.String(),
			"next", s.plan.next(now, j).Format("2006-01-02 15:04:05.000 MST"))
	}
	ready <- struct{}{}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var stop *stopping // set by Stop
	for {
		now := time.Now()
		if stop == nil {
			for _, j := range s.plan.due(now, s.jobs) {
				s.dispatch(j, now)
			}
		}
		s.enforce(now)
		if stop != nil {
			if !stop.interruptAt.IsZero() && !now.Before(stop.interruptAt) {
				stop.interruptAt = time.Time{}
				s.interruptAll()
			}
			if s.running() == 0 {
				break
			}
			if !now.Before(stop.giveUp) {
				s.abandon()
				break
			}
		}
		timer.Reset(s.wait(now, stop))
		select {
		case <-timer.C:
		case f := <-s.finished:
			s.finish(f)
		case deadline := <-s.stop:
			stop = newStopping(time.Now(), deadline)
			for _, j := range s.jobs {
				close(j.runs)
			}
		}
	}
	for _, j := range s.jobs {
		if !j.abandoned {
			<-j.exited
		}
	}
}

// stopping is the schedule of a Stop: when to interrupt the runs still in
// progress, and when to give up on them.
type stopping struct {
	interruptAt time.Time // zero once done
	giveUp      time.Time
}

// newStopping plans a stop that began at now and must be over by deadline:
// runs are interrupted shutdownGrace before it, so that they have that
// long to come back, or at once if the deadline is nearer than that.
func newStopping(now, deadline time.Time) *stopping {
	interrupt := deadline.Add(-shutdownGrace)
	if interrupt.Before(now) {
		interrupt = now
	}
	giveUp := deadline
	if least := interrupt.Add(shutdownGrace / 4); giveUp.Before(least) {
		giveUp = least
	}
	return &stopping{interruptAt: interrupt, giveUp: giveUp}
}

// dispatch starts a run of j, unless the previous one still runs.
func (s *Scheduler) dispatch(j *job, now time.Time) {
	if j.run != 0 {
		s.log.Warn("cron job still running; skipping this run", "job", j.Name,
			"running", now.Sub(j.started).Round(time.Millisecond))
		return
	}
	s.seq++
	j.run, j.started = s.seq, now
	if s.timeout > 0 {
		j.interruptAt = now.Add(s.timeout)
	}
	j.runs <- j.run // never blocks: the buffer is free whenever no run is in progress
}

// finish records that a run has returned.
func (s *Scheduler) finish(f finished) {
	j := f.job
	if f.run != j.run {
		return // cannot happen: a job has one run at a time
	}
	took := time.Since(j.started).Round(time.Millisecond)
	j.run, j.interruptAt, j.stuckAt = 0, time.Time{}, time.Time{}
	switch f.err {
	case nil:
	case python.ErrJobTimedOut:
		s.log.Error("cron job interrupted by RequestTimeoutException (traceback above)", "job", j.Name, "took", took)
	default:
		s.log.Error("cron job raised an exception (traceback above)", "job", j.Name, "took", took)
	}
}

// enforce raises the timeout in runs that are past it, and reports those
// that have not come back one more timeout later as stuck.
func (s *Scheduler) enforce(now time.Time) {
	for _, j := range s.jobs {
		if j.run == 0 {
			continue
		}
		if !j.interruptAt.IsZero() && !now.Before(j.interruptAt) {
			if s.monitor.Interrupt(j.thread, j.run) {
				s.log.Warn("cron job timed out; raising RequestTimeoutException in it", "job", j.Name,
					"running", now.Sub(j.started).Round(time.Millisecond))
				j.interruptAt, j.stuckAt = time.Time{}, now.Add(s.timeout)
			} else {
				j.interruptAt = now.Add(retryInterrupt)
			}
		}
		if !j.stuckAt.IsZero() && !now.Before(j.stuckAt) {
			j.stuckAt = time.Time{}
			s.log.Error("cron job is stuck: it has not come back from its timeout; its runs are skipped until it does",
				"job", j.Name, "running", now.Sub(j.started).Round(time.Millisecond))
		}
	}
}

// interruptAll raises wsgo.RequestTimeoutException in every run still in
// progress at the shutdown deadline.
func (s *Scheduler) interruptAll() {
	for _, j := range s.jobs {
		if j.run != 0 && s.monitor.Interrupt(j.thread, j.run) {
			j.interruptAt = time.Time{}
			s.log.Warn("cron job still running at the shutdown deadline; raising RequestTimeoutException in it",
				"job", j.Name, "running", time.Since(j.started).Round(time.Millisecond))
		}
	}
}

// abandon gives up on the runs still in progress.
func (s *Scheduler) abandon() {
	for _, j := range s.jobs {
		if j.run != 0 {
			j.abandoned = true
			s.log.Error("cron job did not stop after RequestTimeoutException; shutting down without it",
				"job", j.Name, "running", time.Since(j.started).Round(time.Millisecond))
		}
	}
}

// running is the number of runs in progress.
func (s *Scheduler) running() int {
	n := 0
	for _, j := range s.jobs {
		if j.run != 0 {
			n++
		}
	}
	return n
}

// wait is how long the loop may sleep: until the next run is due (unless
// stopping), a timeout or stuck report falls due, or a step of the stop.
func (s *Scheduler) wait(now time.Time, stop *stopping) time.Duration {
	var at []time.Time
	d := time.Hour
	if stop == nil {
		d = s.plan.wake(now, s.jobs)
	} else {
		at = append(at, stop.interruptAt, stop.giveUp)
	}
	for _, j := range s.jobs {
		if j.run != 0 {
			at = append(at, j.interruptAt, j.stuckAt)
		}
	}
	for _, t := range at {
		if !t.IsZero() {
			d = min(d, t.Sub(now))
		}
	}
	return max(d, 0)
}
