package parking

import (
	"testing"
	"time"
)

func TestParseTimeout(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   time.Duration
		action Action
		bad    bool
	}{
		{"", DefaultTimeout, HTTP204, false},
		{"60 retry", 60 * time.Second, Retry, false},
		{"0.5 http-504", 500 * time.Millisecond, HTTP504, false},
		{"30", 30 * time.Second, HTTP204, false},
		{"disconnect", DefaultTimeout, Disconnect, false},
		{"  10   HTTP-204 ", 10 * time.Second, HTTP204, false},
		{"0 retry", 0, 0, true},
		{"-1 retry", 0, 0, true},
		{"10 explode", 0, 0, true},
		{"10 retry extra", 0, 0, true},
	} {
		d, a, err := ParseTimeout(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("ParseTimeout(%q) error = %v, want error %v", tc.in, err, tc.bad)
			continue
		}
		if !tc.bad && (d != tc.want || a != tc.action) {
			t.Errorf("ParseTimeout(%q) = %v %v, want %v %v", tc.in, d, a, tc.want, tc.action)
		}
	}
}

// recorder is a wake function that keeps its wake-ups.
type recorder struct{ got []Wake }

func (r *recorder) wake(w Wake) { r.got = append(r.got, w) }

func TestNotifyWakesEachRequestOnce(t *testing.T) {
	l := NewLot()
	var rab, rb, rc recorder
	ab := l.Park(Channels("a, b"), rab.wake)
	l.Park(Channels("b"), rb.wake)
	c := l.Park(Channels("c,"), rc.wake)
	if n := l.Len(); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	if n := l.Notify(Channels("a,b,x"), Wake{Action: Retry, Arg: "go"}); n != 2 {
		t.Fatalf("Notify woke %d, want 2 (ab once, b)", n)
	}
	for _, r := range []*recorder{&rab, &rb} {
		if len(r.got) != 1 || r.got[0] != (Wake{Action: Retry, Arg: "go"}) {
			t.Errorf("woken with %+v, want one retry with arg go", r.got)
		}
	}
	if len(rc.got) != 0 {
		t.Errorf("a ticket on another channel was woken: %+v", rc.got)
	}
	if l.Leave(ab) {
		t.Error("Leave of a woken ticket reported true")
	}
	if !l.Leave(c) || l.Leave(c) {
		t.Error("Leave of a parked ticket: want true once, then false")
	}
	if n := l.Len(); n != 0 || len(l.channels) != 0 {
		t.Errorf("after all left: Len %d, channels %v", n, l.channels)
	}
}

func TestWakeAll(t *testing.T) {
	l := NewLot()
	rs := make([]recorder, 3)
	l.Park([]string{"x"}, rs[0].wake)
	l.Park([]string{"x", "y"}, rs[1].wake)
	l.Park(nil, rs[2].wake) // can only time out, or be woken by WakeAll
	if n := l.Notify([]string{""}, Wake{}); n != 0 {
		t.Errorf("Notify on no channel woke %d", n)
	}
	l.WakeAll(Wake{Action: HTTP204})
	for i, r := range rs {
		if len(r.got) != 1 || r.got[0].Action != HTTP204 {
			t.Errorf("ticket %d woken with %+v", i, r.got)
		}
	}
	if n := l.Len(); n != 0 {
		t.Errorf("Len after WakeAll = %d", n)
	}
}
