package cron

import "time"

// entry is when a job runs: every period, or at the minutes spec selects.
type entry struct {
	period time.Duration // a timer's period; 0 for a cron job
	spec   Spec          // a cron job's schedule
	next   time.Time     // a timer's next due time
}

func (e *entry) String() string {
	if e.period > 0 {
		return "every " + e.period.String()
	}
	return "cron " + e.spec.String()
}

// plan decides which jobs are due. It reads no clock: it is given the
// time, so that tests can drive it with any times they like.
//
// A timer is due at begin + k*period for k = 1, 2, ...; when one of those
// times passed unseen (the process was stopped, say), the run happens once
// and the next is the following multiple, so that runs neither drift nor
// pile up. Cron jobs are considered once per minute of wall-clock time, at
// its start, matched in loc; minutes that pass unseen (the wall clock
// jumped forward, or the process was stopped) are not caught up, and
// minutes seen already are not run again if the wall clock goes back.
type plan struct {
	begin   time.Time      // timers count their periods from here
	loc     *time.Location // cron specs are read in this zone
	checked time.Time      // the latest minute whose cron jobs were considered
	cron    bool           // some job is a cron job
}

// start begins the plan at now: the minute now is in counts as seen (it
// has begun already), and every timer's first run is one period away.
func (p *plan) start(now time.Time, loc *time.Location, jobs []*job) {
	p.begin, p.loc, p.checked = now, loc, now.Truncate(time.Minute)
	for _, j := range jobs {
		if j.period > 0 {
			j.next = now.Add(j.period)
		} else {
			p.cron = true
		}
	}
}

// due returns the jobs due at now, and moves each timer's next run past
// now.
func (p *plan) due(now time.Time, jobs []*job) []*job {
	var due []*job
	minute := now.Truncate(time.Minute) // whole minutes of absolute time are whole local minutes
	newMinute := minute.After(p.checked)
	if newMinute {
		p.checked = minute
	}
	for _, j := range jobs {
		switch {
		case j.period > 0:
			if !now.Before(j.next) {
				due = append(due, j)
				j.next = tick(p.begin, now, j.period)
			}
		case newMinute && j.spec.Match(minute.In(p.loc)):
			due = append(due, j)
		}
	}
	return due
}

// wake is how long after now something may next be due.
func (p *plan) wake(now time.Time, jobs []*job) time.Duration {
	d := time.Hour
	if p.cron {
		d = p.checked.Add(time.Minute).Sub(now)
	}
	for _, j := range jobs {
		if j.period > 0 {
			d = min(d, j.next.Sub(now))
		}
	}
	return max(d, 0)
}

// next is when j will next be due after now, for the log.
func (p *plan) next(now time.Time, j *job) time.Time {
	if j.period > 0 {
		return j.next
	}
	t, _ := j.spec.Next(now.In(p.loc))
	return t
}

// tick is the first of begin + k*period, for k >= 1, after now.
func tick(begin, now time.Time, period time.Duration) time.Time {
	k := max(now.Sub(begin)/period+1, 1)
	return begin.Add(k * period)
}
