package python

/*
#include "wsgo.h"
*/
import "C"

import "sync/atomic"

// ParkNotifier receives wsgo.notify_parked(channels, action, arg) from any
// Python thread: the comma-separated channels, the action (one of the
// WSGO_PARK_* values) and the argument. It returns how many parked
// requests it woke. It runs with the GIL held, so it must be quick and
// must not call back into Python.
type ParkNotifier func(channels string, action int, arg string) int

var parkNotifier atomic.Pointer[ParkNotifier]

// SetParkNotifier installs the function that serves wsgo.notify_parked.
// Until it is set, notify_parked wakes nothing.
func SetParkNotifier(f ParkNotifier) { parkNotifier.Store(&f) }

// wsgoNotifyParked is wsgo.notify_parked's way into Go. The strings are
// borrowed from Python objects the caller keeps alive (GIL held); they
// are copied before it returns.
//
//export wsgoNotifyParked
func wsgoNotifyParked(channels *C.char, channelsLen C.long, action C.int, arg *C.char, argLen C.long) C.long {
	f := parkNotifier.Load()
	if f == nil {
		return 0
	}
	return C.long((*f)(C.GoStringN(channels, C.int(channelsLen)), int(action),
		C.GoStringN(arg, C.int(argLen))))
}
