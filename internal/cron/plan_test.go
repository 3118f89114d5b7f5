package cron

import (
	"slices"
	"testing"
	"time"
)

func timerJob(period time.Duration) *job { return &job{entry: entry{period: period}} }
func cronJob(s Spec) *job                { return &job{entry: entry{spec: s}} }

// dueAt drives p to now (a made-up time: no test waits) and reports which
// of jobs were due.
func dueAt(p *plan, now time.Time, jobs []*job) []bool {
	due := p.due(now, jobs)
	got := make([]bool, len(jobs))
	for i, j := range jobs {
		got[i] = slices.Contains(due, j)
	}
	return got
}

// TestPlanTimer: a timer is due every period from the start, on a fixed
// grid: a late wake-up runs it once, and the next run stays on the grid.
func TestPlanTimer(t *testing.T) {
	t0 := time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	half, second := timerJob(500*time.Millisecond), timerJob(time.Second)
	jobs := []*job{half, second}
	var p plan
	p.start(t0, time.UTC, jobs)
	if w := p.wake(t0, jobs); w != 500*time.Millisecond {
		t.Errorf("first wake after %v, want 500ms", w)
	}
	for _, step := range []struct {
		after time.Duration
		want  []bool // half, second
	}{
		{0, []bool{false, false}},
		{499 * time.Millisecond, []bool{false, false}},
		{500 * time.Millisecond, []bool{true, false}},
		{700 * time.Millisecond, []bool{false, false}},
		{time.Second, []bool{true, true}},
		{time.Second + time.Millisecond, []bool{false, false}},
		// Woken late (the process was stopped): each runs once, not once
		// per missed period.
		{3700 * time.Millisecond, []bool{true, true}},
		{3900 * time.Millisecond, []bool{false, false}},
		{4 * time.Second, []bool{true, true}},
	} {
		if got := dueAt(&p, t0.Add(step.after), jobs); !slices.Equal(got, step.want) {
			t.Errorf("at +%v: due = %v, want %v", step.after, got, step.want)
		}
	}
	// After +4s: half next at 4.5 s, second at 5 s.
	if !half.next.Equal(t0.Add(4500*time.Millisecond)) || !second.next.Equal(t0.Add(5*time.Second)) {
		t.Errorf("next runs at %v and %v, want +4.5s and +5s", half.next.Sub(t0), second.next.Sub(t0))
	}
	if w := p.wake(t0.Add(4200*time.Millisecond), jobs); w != 300*time.Millisecond {
		t.Errorf("wake at +4.2s after %v, want 300ms", w)
	}
}

func TestTick(t *testing.T) {
	t0 := time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ now, want time.Duration }{
		{0, time.Second},
		{-time.Second, time.Second}, // the clock is never before the start, but if it were
		{999 * time.Millisecond, time.Second},
		{time.Second, 2 * time.Second},
		{10500 * time.Millisecond, 11 * time.Second},
	} {
		if got := tick(t0, t0.Add(tc.now), time.Second); !got.Equal(t0.Add(tc.want)) {
			t.Errorf("tick at +%v = +%v, want +%v", tc.now, got.Sub(t0), tc.want)
		}
	}
}

// TestPlanCron: cron jobs are considered once per minute of local time, at
// its start; the minute the plan started in is not, nor a minute again
// when the clock goes back.
func TestPlanCron(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skip(err)
	}
	// Sunday 2026-03-01, 12:00:30 in Paris (11:00:30 UTC).
	start := time.Date(2026, time.March, 1, 12, 0, 30, 0, paris)
	every := cronJob(Spec{Any, Any, Any, Any, Any})
	at1201 := cronJob(Spec{1, 12, Any, Any, Any})
	sunday := cronJob(Spec{2, Any, Any, Any, 7})
	monday := cronJob(Spec{2, Any, Any, Any, 1})
	utcNoon := cronJob(Spec{1, 11, Any, Any, Any}) // 11:01 local never comes today
	jobs := []*job{every, at1201, sunday, monday, utcNoon}
	var p plan
	p.start(start, paris, jobs)
	if w := p.wake(start, jobs); w != 30*time.Second {
		t.Errorf("first wake after %v, want 30s (the next minute's start)", w)
	}
	for _, step := range []struct {
		at   time.Time
		want []bool // every, at1201, sunday, monday, utcNoon
	}{
		{start.Add(20 * time.Second), []bool{false, false, false, false, false}}, // still 12:00
		{start.Add(30 * time.Second), []bool{true, true, false, false, false}},   // 12:01:00
		{start.Add(40 * time.Second), []bool{false, false, false, false, false}}, // 12:01 again
		{start.Add(90 * time.Second), []bool{true, false, true, false, false}},   // 12:02:00
		// The wall clock went back a minute: 12:01 is not run again.
		{start.Add(35 * time.Second), []bool{false, false, false, false, false}},
		// A jump forward: the minutes in between are not caught up.
		{start.Add(10*time.Minute + 40*time.Second), []bool{true, false, false, false, false}}, // 12:11:10
	} {
		if got := dueAt(&p, step.at, jobs); !slices.Equal(got, step.want) {
			t.Errorf("at %v: due = %v, want %v", step.at.Format(time.TimeOnly), got, step.want)
		}
	}
	if w := p.wake(start.Add(10*time.Minute+40*time.Second), jobs); w != 50*time.Second {
		t.Errorf("wake at 12:11:10 after %v, want 50s", w)
	}
	if next := p.next(start, sunday); !next.Equal(time.Date(2026, time.March, 1, 12, 2, 0, 0, paris)) {
		t.Errorf("sunday job next at %v", next)
	}
	if next := p.next(start, monday); !next.Equal(time.Date(2026, time.March, 2, 0, 2, 0, 0, paris)) {
		t.Errorf("monday job next at %v", next)
	}
}

// TestPlanMixed: with both kinds, the plan wakes for whichever is first.
func TestPlanMixed(t *testing.T) {
	start := time.Date(2026, time.March, 1, 12, 0, 59, 0, time.UTC)
	jobs := []*job{timerJob(5 * time.Second), cronJob(Spec{Any, Any, Any, Any, Any})}
	var p plan
	p.start(start, time.UTC, jobs)
	if w := p.wake(start, jobs); w != time.Second {
		t.Errorf("wake after %v, want 1s (the minute)", w)
	}
	if got := dueAt(&p, start.Add(time.Second), jobs); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("at 12:01:00 due = %v", got)
	}
	if w := p.wake(start.Add(time.Second), jobs); w != 4*time.Second {
		t.Errorf("then wake after %v, want 4s (the timer)", w)
	}
}
