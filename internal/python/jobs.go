package python

/*
#include <stdlib.h>
#include "wsgo.h"
*/
import "C"

import (
	"errors"
	"math"
	"slices"
	"time"
	"unsafe"
)

// Job is a function that the app registered with @wsgo.timer or @wsgo.cron
// while Start imported it. When and where it runs is the caller's business
// (package cron); RunJob calls it.
type Job struct {
	index int // in the C side's table of job callables
	// Name is the function's module and qualified name, for logs.
	Name string
	// Period is @wsgo.timer's period; 0 for a @wsgo.cron job.
	Period time.Duration
	// Cron is @wsgo.cron's fields: minute, hour, day of the month, month,
	// day of the week (0 or 7 is Sunday); -1 matches any value.
	Cron [5]int
}

// registered is written once by Start, before any other goroutine can
// call Jobs.
var registered []Job

// Jobs returns the jobs registered while Start imported the app, in the
// order they were registered.
func Jobs() []Job { return slices.Clone(registered) }

// takeJobs collects the registered jobs from the wsgo module. Start-up
// thread, GIL held.
func takeJobs() error {
	var arr *C.wsgo_job
	n := C.wsgo_take_jobs(&arr)
	if n < 0 {
		return errors.New("could not read the app's @wsgo.timer and @wsgo.cron jobs")
	}
	defer C.free(unsafe.Pointer(arr))
	for i, cj := range unsafe.Slice(arr, int(n)) {
		j := Job{index: i, Name: C.GoString(cj.name)}
		C.free(unsafe.Pointer(cj.name))
		if cj.kind == C.WSGO_JOB_TIMER {
			j.Period = seconds(float64(cj.period))
		} else {
			for k := range j.Cron {
				j.Cron[k] = int(cj.cron[k])
			}
		}
		registered = append(registered, j)
	}
	return nil
}

// seconds converts a timer's period (above 0, checked by the decorator)
// to a Duration of at least 1 ms and at most 100 years: a shorter one
// would have the scheduler do nothing else, and a longer one is never due.
func seconds(s float64) time.Duration {
	const maxSeconds = 100 * 365 * 24 * 3600
	return max(time.Duration(math.Min(s, maxSeconds)*float64(time.Second)), time.Millisecond)
}

// Errors from RunJob. Either way the traceback has been printed.
var (
	ErrJobFailed   = errors.New("the job raised an exception")
	ErrJobTimedOut = errors.New("the job was interrupted with RequestTimeoutException")
)

// RunJob calls job on t's thread, as run number run (which Interrupt takes
// to raise wsgo.RequestTimeoutException in it), and returns when it does:
// nil, ErrJobTimedOut or ErrJobFailed. Run numbers must differ from the
// thread's previous ones. It returns without the GIL, since a job thread
// waits long between runs. A Thread that runs jobs must not run requests.
func (t *Thread) RunJob(job Job, run uint64) error {
	switch C.wsgo_worker_run_job(t.w, C.int(job.index), C.uint64_t(run)) {
	case 0:
		return nil
	case -2:
		return ErrJobTimedOut
	default:
		return ErrJobFailed
	}
}
