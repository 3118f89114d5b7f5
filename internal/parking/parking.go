// Package parking holds requests that an app parked with X-WSGo-Park until
// wsgo.notify_parked names one of their channels or their time runs out.
//
// It owns the channel index and the wake-up of each parked request, and
// nothing else: a parked request holds no worker and no Python object, and
// what a wake-up does to the client (a retry, a status, a dropped
// connection) is the front's business.
package parking

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Action is what happens to a parked request when it wakes. The values are
// those of wsgo.DISCONNECT, wsgo.RETRY, wsgo.HTTP_204 and wsgo.HTTP_504
// (WSGO_PARK_* in internal/python/wsgo.h).
type Action int

const (
	Disconnect Action = iota
	Retry
	HTTP204
	HTTP504
)

// actionNames are the names X-WSGo-Park-Timeout uses, by Action.
var actionNames = [...]string{Disconnect: "disconnect", Retry: "retry", HTTP204: "http-204", HTTP504: "http-504"}

func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return "Action(" + strconv.Itoa(int(a)) + ")"
	}
	return actionNames[a]
}

// Defaults of X-WSGo-Park-Timeout, from the spec.
const (
	DefaultTimeout = 7200 * time.Second
	DefaultAction  = HTTP204
)

// ParseTimeout reads X-WSGo-Park-Timeout: "SECONDS [ACTION]", either part
// may be left out ("" gives the defaults).
func ParseTimeout(v string) (time.Duration, Action, error) {
	d, a := DefaultTimeout, DefaultAction
	fields := strings.Fields(v)
	if len(fields) > 2 {
		return 0, 0, fmt.Errorf("X-WSGo-Park-Timeout %q: want SECONDS ACTION", v)
	}
	for _, f := range fields {
		if n, err := strconv.ParseFloat(f, 64); err == nil {
			if n <= 0 {
				return 0, 0, fmt.Errorf("X-WSGo-Park-Timeout %q: the time must be positive", v)
			}
			d = time.Duration(n * float64(time.Second))
			continue
		}
		var err error
		if a, err = ParseAction(f); err != nil {
			return 0, 0, err
		}
	}
	return d, a, nil
}

// ParseAction reads an action's name.
func ParseAction(name string) (Action, error) {
	for a, n := range actionNames {
		if strings.EqualFold(name, n) {
			return Action(a), nil
		}
	}
	return 0, fmt.Errorf("unknown park action %q (want retry, disconnect, http-204 or http-504)", name)
}

// Channels splits a comma-separated channel list, dropping empty names.
func Channels(list string) []string {
	var out []string
	for c := range strings.SplitSeq(list, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// Wake is what a parked request is woken with.
type Wake struct {
	Action Action
	// Arg is notify_parked's argument, sent with a retry as
	// X-WSGo-Park-Arg.
	Arg string
}

// Ticket is one parked request's place in the Lot.
type Ticket struct {
	channels []string
	wake     func(Wake)
}

// Lot is the parked requests of one process.
type Lot struct {
	mu       sync.Mutex
	channels map[string]map[*Ticket]struct{}
	all      map[*Ticket]struct{} // including those on no channel
	parks    int64                // requests parked so far, for Stats
}

// NewLot returns an empty Lot.
func NewLot() *Lot {
	return &Lot{channels: map[string]map[*Ticket]struct{}{}, all: map[*Ticket]struct{}{}}
}

// Park registers a request on channels. wake is called once, when a
// notification names one of them (or WakeAll runs), on the notifier's
// goroutine and outside the Lot's lock: it must not block.
func (l *Lot) Park(channels []string, wake func(Wake)) *Ticket {
	t := &Ticket{channels: channels, wake: wake}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parks++
	for _, c := range channels {
		set := l.channels[c]
		if set == nil {
			set = map[*Ticket]struct{}{}
			l.channels[c] = set
		}
		set[t] = struct{}{}
	}
	l.all[t] = struct{}{}
	return t
}

// Leave takes t out of the lot without waking it (its time ran out). It
// reports false when t was woken first.
func (l *Lot) Leave(t *Ticket) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.removeLocked(t)
}

func (l *Lot) removeLocked(t *Ticket) bool {
	if _, parked := l.all[t]; !parked {
		return false
	}
	for _, c := range t.channels {
		set := l.channels[c]
		delete(set, t)
		if len(set) == 0 {
			delete(l.channels, c)
		}
	}
	delete(l.all, t)
	return true
}

// Notify wakes every request parked on any of channels, and returns how
// many it woke.
func (l *Lot) Notify(channels []string, w Wake) int {
	l.mu.Lock()
	var woken []*Ticket
	for _, c := range channels {
		for t := range l.channels[c] {
			if l.removeLocked(t) {
				woken = append(woken, t)
			}
		}
	}
	l.mu.Unlock()
	for _, t := range woken {
		t.wake(w)
	}
	return len(woken)
}

// WakeAll wakes every parked request with w (the server is stopping).
func (l *Lot) WakeAll(w Wake) {
	l.mu.Lock()
	woken := make([]*Ticket, 0, len(l.all))
	for t := range l.all {
		l.removeLocked(t)
		woken = append(woken, t)
	}
	l.mu.Unlock()
	for _, t := range woken {
		t.wake(w)
	}
}

// Len is the number of parked requests.
func (l *Lot) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all)
}

// Stats returns how many requests are parked now and how many were parked
// so far.
func (l *Lot) Stats() (parked int, total int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.all), l.parks
}
