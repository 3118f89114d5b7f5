package cron

import (
	"strings"
	"testing"
	"time"
)

// at is a local time in loc, to the minute.
func at(loc *time.Location, y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, loc)
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s not available: %v", name, err)
	}
	return loc
}

func TestSpecMatch(t *testing.T) {
	utc := time.UTC
	// 2026-03-01 is a Sunday, 2026-03-02 a Monday, 2026-03-07 a Saturday.
	sun := at(utc, 2026, time.March, 1, 4, 30)
	mon := at(utc, 2026, time.March, 2, 4, 30)
	sat := at(utc, 2026, time.March, 7, 23, 59)
	if sun.Weekday() != time.Sunday || mon.Weekday() != time.Monday || sat.Weekday() != time.Saturday {
		t.Fatal("the test's calendar is wrong")
	}
	for _, tc := range []struct {
		name string
		spec Spec
		t    time.Time
		want bool
	}{
		{"every minute", Spec{Any, Any, Any, Any, Any}, sun, true},
		{"every minute, any second", Spec{Any, Any, Any, Any, Any}, sun.Add(59 * time.Second), true},
		{"minute matches", Spec{30, Any, Any, Any, Any}, sun, true},
		{"minute differs", Spec{31, Any, Any, Any, Any}, sun, false},
		{"minute 0", Spec{0, Any, Any, Any, Any}, at(utc, 2026, time.March, 1, 5, 0), true},
		{"hour matches", Spec{30, 4, Any, Any, Any}, sun, true},
		{"hour differs", Spec{30, 5, Any, Any, Any}, sun, false},
		{"hour 23 minute 59", Spec{59, 23, Any, Any, Any}, sat, true},
		{"day matches", Spec{Any, Any, 1, Any, Any}, sun, true},
		{"day differs", Spec{Any, Any, 2, Any, Any}, sun, false},
		{"month matches", Spec{Any, Any, Any, 3, Any}, sun, true},
		{"month differs", Spec{Any, Any, Any, 4, Any}, sun, false},
		{"Sunday as 0", Spec{Any, Any, Any, Any, 0}, sun, true},
		{"Sunday as 7", Spec{Any, Any, Any, Any, 7}, sun, true},
		{"Sunday as 0, on Monday", Spec{Any, Any, Any, Any, 0}, mon, false},
		{"Sunday as 7, on Saturday", Spec{Any, Any, Any, Any, 7}, sat, false},
		{"Monday as 1", Spec{Any, Any, Any, Any, 1}, mon, true},
		{"Monday as 1, on Sunday", Spec{Any, Any, Any, Any, 1}, sun, false},
		{"Saturday as 6", Spec{Any, Any, Any, Any, 6}, sat, true},
		{"every field", Spec{30, 4, 1, 3, 0}, sun, true},
		// Every field given must match: day and weekday are not OR'ed.
		{"day matches, weekday not", Spec{Any, Any, 1, Any, 1}, sun, false},
		{"weekday matches, day not", Spec{Any, Any, 2, Any, 0}, sun, false},
		{"leap day", Spec{0, 0, 29, 2, Any}, at(utc, 2028, time.February, 29, 0, 0), true},
	} {
		if got := tc.spec.Match(tc.t); got != tc.want {
			t.Errorf("%s: %v.Match(%v) = %v, want %v", tc.name, tc.spec, tc.t.Format(time.RFC1123), got, tc.want)
		}
	}
}

// TestSpecMatchLocalTime: fields are read in the time's own zone, so the
// same instant matches a different hour in another zone.
func TestSpecMatchLocalTime(t *testing.T) {
	paris := mustLoad(t, "Europe/Paris")
	instant := time.Date(2026, time.July, 1, 10, 0, 0, 0, time.UTC) // 12:00 in Paris (CEST)
	spec := Spec{0, 12, Any, Any, Any}
	if spec.Match(instant) {
		t.Errorf("%v matched 10:00 UTC", spec)
	}
	if !spec.Match(instant.In(paris)) {
		t.Errorf("%v did not match 12:00 in Paris", spec)
	}
}

func TestSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string // "" for valid
	}{
		{Spec{Any, Any, Any, Any, Any}, ""},
		{Spec{0, 0, 1, 1, 0}, ""},
		{Spec{59, 23, 31, 12, 7}, ""},
		{Spec{Any, Any, 29, 2, Any}, ""},
		{Spec{Any, Any, 31, Any, Any}, ""},
		{Spec{60, Any, Any, Any, Any}, "min must be -1 (any) or from 0 to 59, not 60"},
		{Spec{-2, Any, Any, Any, Any}, "min must be"},
		{Spec{Any, 24, Any, Any, Any}, "hour must be"},
		{Spec{Any, Any, 0, Any, Any}, "day must be"},
		{Spec{Any, Any, 32, Any, Any}, "day must be"},
		{Spec{Any, Any, Any, 0, Any}, "mon must be"},
		{Spec{Any, Any, Any, 13, Any}, "mon must be"},
		{Spec{Any, Any, Any, Any, 8}, "wday must be"},
		{Spec{Any, Any, 30, 2, Any}, "day 30 never comes in month 2"},
		{Spec{Any, Any, 31, 11, Any}, "day 31 never comes in month 11"},
	} {
		err := tc.spec.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v, want valid", tc.spec, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%v: %v, want an error containing %q", tc.spec, err, tc.want)
		}
	}
}

func TestSpecString(t *testing.T) {
	if got := (Spec{30, Any, Any, Any, 7}).String(); got != "30 * * * 7" {
		t.Errorf("String() = %q", got)
	}
}

func TestSpecNext(t *testing.T) {
	utc := time.UTC
	from := at(utc, 2026, time.March, 1, 4, 30).Add(17 * time.Second) // a Sunday
	for _, tc := range []struct {
		name string
		spec Spec
		from time.Time
		want time.Time
	}{
		{"every minute: the next one", Spec{Any, Any, Any, Any, Any}, from, at(utc, 2026, time.March, 1, 4, 31)},
		{"from a minute's start: the next one", Spec{Any, Any, Any, Any, Any}, at(utc, 2026, time.March, 1, 4, 30), at(utc, 2026, time.March, 1, 4, 31)},
		{"half past: next hour", Spec{30, Any, Any, Any, Any}, from, at(utc, 2026, time.March, 1, 5, 30)},
		{"later this hour", Spec{45, Any, Any, Any, Any}, from, at(utc, 2026, time.March, 1, 4, 45)},
		{"daily at 04:30: tomorrow", Spec{30, 4, Any, Any, Any}, from, at(utc, 2026, time.March, 2, 4, 30)},
		{"any minute of hour 3: tomorrow", Spec{Any, 3, Any, Any, Any}, from, at(utc, 2026, time.March, 2, 3, 0)},
		{"Mondays", Spec{0, 9, Any, Any, 1}, from, at(utc, 2026, time.March, 2, 9, 0)},
		{"Sundays as 0: next week", Spec{0, 4, Any, Any, 0}, from, at(utc, 2026, time.March, 8, 4, 0)},
		{"Sundays as 7: same", Spec{0, 4, Any, Any, 7}, from, at(utc, 2026, time.March, 8, 4, 0)},
		{"Sundays as 7: later today", Spec{0, 5, Any, Any, 7}, from, at(utc, 2026, time.March, 1, 5, 0)},
		{"the 15th", Spec{0, 0, 15, Any, Any}, from, at(utc, 2026, time.March, 15, 0, 0)},
		{"the 31st skips April", Spec{0, 0, 31, Any, Any}, at(utc, 2026, time.April, 1, 0, 0), at(utc, 2026, time.May, 31, 0, 0)},
		{"new year", Spec{0, 0, 1, 1, Any}, from, at(utc, 2027, time.January, 1, 0, 0)},
		{"leap day", Spec{0, 12, 29, 2, Any}, from, at(utc, 2028, time.February, 29, 12, 0)},
		// Friday the 13th: every field must match.
		{"Friday the 13th", Spec{0, 0, 13, Any, 5}, from, at(utc, 2026, time.March, 13, 0, 0)},
		{"Friday the 13th after March", Spec{0, 0, 13, Any, 5}, at(utc, 2026, time.March, 14, 0, 0), at(utc, 2026, time.November, 13, 0, 0)},
		// Leap days on a Monday are rare: 2044 is the next after 2026.
		{"leap day on a Monday", Spec{0, 0, 29, 2, 1}, from, at(utc, 2044, time.February, 29, 0, 0)},
	} {
		got, ok := tc.spec.Next(tc.from)
		if !ok || !got.Equal(tc.want) {
			t.Errorf("%s: %v.Next(%v) = %v, %v; want %v", tc.name, tc.spec, tc.from.Format(time.RFC1123), got.Format(time.RFC1123), ok, tc.want.Format(time.RFC1123))
		}
	}
	if got, ok := (Spec{Any, Any, 31, 2, Any}).Next(from); ok {
		t.Errorf("Next of a day February never has = %v, want none", got)
	}
}

// TestSpecNextAgreesWithMatch walks minute by minute, as the scheduler
// does, and checks that Next always names the first minute Match accepts,
// in UTC and across daylight-saving changes (whose skipped local times
// never match and whose repeated ones match twice), including Lord Howe
// Island's half-hour ones.
func TestSpecNextAgreesWithMatch(t *testing.T) {
	specs := []Spec{
		{Any, Any, Any, Any, Any},
		{30, Any, Any, Any, Any},
		{30, 2, Any, Any, Any}, // skipped in spring and repeated in autumn where clocks change at 02:00 or 03:00
		{30, 1, Any, Any, Any},
		{0, 1, Any, Any, Any},
		{15, Any, Any, Any, 0},
		{45, 23, 31, Any, Any},
		{0, 0, 1, 11, Any},
	}
	// The days around each zone's 2026 changes.
	for name, changes := range map[string][]time.Time{
		"UTC":                 {time.Date(2026, time.February, 27, 0, 0, 0, 0, time.UTC)},
		"Europe/London":       {time.Date(2026, time.March, 28, 0, 0, 0, 0, time.UTC), time.Date(2026, time.October, 24, 0, 0, 0, 0, time.UTC)},
		"America/New_York":    {time.Date(2026, time.March, 7, 0, 0, 0, 0, time.UTC), time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC)},
		"Australia/Lord_Howe": {time.Date(2026, time.April, 4, 0, 0, 0, 0, time.UTC), time.Date(2026, time.October, 3, 0, 0, 0, 0, time.UTC)},
	} {
		loc := mustLoad(t, name)
		for _, day := range changes {
			from := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, loc)
			for _, spec := range specs {
				checkAgreement(t, spec, from, from.Add(3*24*time.Hour))
			}
		}
	}
}

// checkAgreement checks, for every minute from from to to, that Next
// gives the first later minute that Match accepts.
func checkAgreement(t *testing.T, spec Spec, from, to time.Time) {
	t.Helper()
	var matching []time.Time // every matching minute in the range, in order
	for c := from; c.Before(to.Add(40 * 24 * time.Hour)); c = c.Add(time.Minute) {
		if spec.Match(c) {
			matching = append(matching, c)
		}
	}
	i := 0
	for c := from; c.Before(to); c = c.Add(time.Minute) {
		for i < len(matching) && !matching[i].After(c) {
			i++
		}
		if i == len(matching) {
			return // beyond what was walked
		}
		got, ok := spec.Next(c)
		if !ok || !got.Equal(matching[i]) {
			t.Errorf("%v.Next(%v) = %v, %v; walking minute by minute gives %v", spec, c, got, ok, matching[i])
			return
		}
	}
}
