package cron

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Any in a Spec field matches every value, like * in a crontab.
const Any = -1

// Spec is a @wsgo.cron schedule: the minute, hour, day of the month, month
// and day of the week at which a job runs, each Any or one value. Every
// field that is not Any must match (unlike Vixie cron, where a line that
// restricts both the day of the month and the day of the week runs when
// either matches). Weekday counts as crontab does: 0 and 7 are Sunday, 1
// is Monday.
type Spec struct {
	Minute, Hour, Day, Month, Weekday int
}

// SpecOf makes a Spec from @wsgo.cron's arguments in their order: minute,
// hour, day, month, weekday.
func SpecOf(f [5]int) Spec {
	return Spec{Minute: f[0], Hour: f[1], Day: f[2], Month: f[3], Weekday: f[4]}
}

// daysIn is the most days month m can have.
var daysIn = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// Validate reports a field out of range, or a day that its month never
// has, with the same rules as the decorator.
func (s Spec) Validate() error {
	for _, f := range []struct {
		name      string
		v, lo, hi int
	}{
		{"min", s.Minute, 0, 59}, {"hour", s.Hour, 0, 23}, {"day", s.Day, 1, 31},
		{"mon", s.Month, 1, 12}, {"wday", s.Weekday, 0, 7},
	} {
		if f.v != Any && (f.v < f.lo || f.v > f.hi) {
			return fmt.Errorf("%s must be -1 (any) or from %d to %d, not %d", f.name, f.lo, f.hi, f.v)
		}
	}
	if s.Day != Any && s.Month != Any && s.Day > daysIn[s.Month] {
		return fmt.Errorf("day %d never comes in month %d", s.Day, s.Month)
	}
	return nil
}

// Match reports whether the spec selects the minute that contains t, read
// in t's location.
func (s Spec) Match(t time.Time) bool {
	return field(s.Minute, t.Minute()) && field(s.Hour, t.Hour()) && s.matchDate(t)
}

// matchDate reports whether the spec selects the date of t.
func (s Spec) matchDate(t time.Time) bool {
	_, month, day := t.Date()
	return field(s.Day, day) && field(s.Month, int(month)) &&
		(s.Weekday == Any || s.Weekday%7 == int(t.Weekday()))
}

func field(want, got int) bool { return want == Any || want == got }

// horizon bounds Next's search: every date recurs, on every weekday, within
// one 400-year Gregorian cycle.
const horizon = 400

// Next returns the start of the first minute after t that the spec
// selects, read in t's location, or false if there is none (never, for a
// spec that Validate accepts). Local times that a daylight-saving change
// skips never match; those it repeats match each time, as Match sees them
// minute by minute.
func (s Spec) Next(t time.Time) (time.Time, bool) {
	loc := t.Location()
	// Whole minutes of absolute time are whole minutes of local time in
	// every zone in use since the 1970s, and local hours change only at
	// whole local hours (or, in a few zones, half hours), when clocks go
	// forward or back: so steps of absolute minutes within the local hour
	// never pass a minute that could match.
	c := t.Truncate(time.Minute).Add(time.Minute).In(loc)
	end := t.AddDate(horizon, 0, 0)
	for c.Before(end) {
		minute := c.Minute()
		var next time.Time
		switch {
		case !s.matchDate(c):
			// The first instant of the next date.
			y, m, d := c.Date()
			next = time.Date(y, m, d+1, 0, 0, 0, 0, loc)
		case !field(s.Hour, c.Hour()):
			next = c.Add(time.Duration(60-minute) * time.Minute)
		case s.Minute == Any || s.Minute == minute:
			return c, true
		case s.Minute > minute:
			next = c.Add(time.Duration(s.Minute-minute) * time.Minute)
		default:
			next = c.Add(time.Duration(60-minute) * time.Minute)
		}
		if !next.After(c) {
			next = c.Add(time.Minute) // a zone transition confused the jump
		}
		c = next
	}
	return time.Time{}, false
}

// String is the spec in crontab form, such as "30 * * * 1".
func (s Spec) String() string {
	fields := []int{s.Minute, s.Hour, s.Day, s.Month, s.Weekday}
	parts := make([]string, len(fields))
	for i, f := range fields {
		if f == Any {
			parts[i] = "*"
		} else {
			parts[i] = strconv.Itoa(f)
		}
	}
	return strings.Join(parts, " ")
}
