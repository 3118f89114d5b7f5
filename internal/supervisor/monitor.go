package supervisor

import (
	"net"
	"os"
	"syscall"
)

// Monitor, when set in Config, is told of the worker processes' lives (for
// --stats-socket's metrics and health check). It is called from the
// supervisor's loop and must not block.
type Monitor func(Event)

// Event is news of a worker process.
type Event struct {
	Kind EventKind
	PID  int
	Slot int
	// Reason, for Started, is why the process replaces another: one of
	// RestartReasons, or "" for the first processes.
	Reason string
	// Stats, for Started, is the supervisor's end of the process's stats
	// channel: a socket pair whose other end the worker finds through
	// Link.Stats. What goes over it is the monitor's business.
	Stats net.Conn
}

// EventKind says what happened to a worker process.
type EventKind int

const (
	Started      EventKind = iota // started (not yet accepting)
	Ready                         // accepts connections
	Stopping                      // sent SIGTERM: accepts no more
	Exited                        // gone
	ShuttingDown                  // the supervisor stops every worker (PID and Slot are 0)
)

// Why a worker process replaces another (Event.Reason).
const (
	ReasonExit    = "exit"    // the previous one exited or crashed on its own
	ReasonRecycle = "recycle" // it asked to be replaced (--max-requests, --reload-on-rss)
	ReasonReload  = "reload"  // SIGHUP or --reload
)

// RestartReasons lists every Event.Reason of a replacement.
var RestartReasons = []string{ReasonExit, ReasonRecycle, ReasonReload}

// notify tells the monitor, if any, of ev.
func (s *supervisor) notify(ev Event) {
	if s.cfg.Monitor != nil {
		s.cfg.Monitor(ev)
	}
}

// statsChannel makes a worker's stats channel: the supervisor's end, and
// the descriptor of the worker's, which the caller passes to the worker
// and then closes.
func statsChannel() (net.Conn, int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, -1, err
	}
	f := os.NewFile(uintptr(fds[0]), "wsgo-stats")
	defer f.Close() // FileConn holds its own copy
	conn, err := net.FileConn(f)
	if err != nil {
		syscall.Close(fds[1])
		return nil, -1, err
	}
	return conn, fds[1], nil
}
