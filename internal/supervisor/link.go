package supervisor

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// How a worker process learns its place: the supervisor starts it with
// workerEnv set to "SLOT:GENERATION:PROCESSES:STATSFD" (STATSFD is the
// descriptor of its stats channel, 0 for none), the slot's listening socket
// as file descriptor 3, the write end of a control pipe as 4 and the slot's
// HTTPS listening socket as 5. A socket that the command line does not ask
// for (--http-socket or --https-socket) is a closed descriptor; the worker
// reads the same command line and does not look for it.
//
// workerEnv is not a setting: settings come as WSGO_<FLAG> variables (see
// config.EnvName), and no flag is named "worker". Workers do not read those
// anyway: they get the supervisor's resolved settings in Config.Env (see
// config.Config.WorkerEnv).
const (
	workerEnv   = "WSGO_WORKER"
	listenFD    = 3
	controlFD   = 4
	tlsListenFD = 5
	msgReady    = "ready"
	msgRecycle  = "recycle"
	firstSlotID = 1 // slots are shown to people from 1
)

// Link is a worker process's side of the supervisor protocol.
type Link struct {
	// Slot is the worker's place, from 1; the first one runs cron jobs.
	Slot int
	// Generation counts reloads, from 1.
	Generation int
	// Processes is how many worker processes the supervisor runs.
	Processes int
	// Stats is the worker's end of its stats channel (nil without one):
	// see Config.Monitor.
	Stats   net.Conn
	control *os.File
}

// First reports whether this is the first worker process, the one that
// runs the app's cron and timer jobs.
func (l *Link) First() bool { return l.Slot == firstSlotID }

// WorkerLink returns the link to the supervisor when this process was
// started by one, or nil when it was not.
func WorkerLink() (*Link, error) {
	v := os.Getenv(workerEnv)
	if v == "" {
		return nil, nil
	}
	parts := strings.Split(v, ":")
	nums := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(parts) != 4 {
			return nil, fmt.Errorf("malformed %s=%q", workerEnv, v)
		}
		nums[i] = n
	}
	os.Unsetenv(workerEnv) // not for the app's own subprocesses
	l := &Link{Slot: nums[0], Generation: nums[1], Processes: nums[2],
		control: os.NewFile(controlFD, "wsgo-control")}
	if fd := nums[3]; fd > 0 {
		f := os.NewFile(uintptr(fd), "wsgo-stats")
		defer f.Close() // FileConn holds its own copy
		conn, err := net.FileConn(f)
		if err != nil {
			return nil, fmt.Errorf("stats channel from the supervisor: %w", err)
		}
		l.Stats = conn
	}
	return l, nil
}

// Listener returns the slot's listening socket, which the supervisor keeps
// open across worker restarts and reloads so that no queued connection is
// lost.
func (l *Link) Listener() (net.Listener, error) { return inherited(listenFD, "wsgo-listener") }

// TLSListener returns the slot's HTTPS listening socket, kept open by the
// supervisor like Listener's.
func (l *Link) TLSListener() (net.Listener, error) {
	return inherited(tlsListenFD, "wsgo-tls-listener")
}

// inherited returns the listening socket passed as descriptor fd.
func inherited(fd uintptr, name string) (net.Listener, error) {
	f := os.NewFile(fd, name)
	if f == nil {
		return nil, errors.New("no listening socket from the supervisor")
	}
	defer f.Close() // FileListener holds its own copy
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("%s (descriptor %d) from the supervisor: %w", name, fd, err)
	}
	return ln, nil
}

// Ready tells the supervisor that the app is imported and the worker
// accepts connections.
func (l *Link) Ready() error { return l.send(msgReady) }

// Recycle asks the supervisor to replace this worker with a fresh one; it
// will be sent SIGTERM once the replacement accepts.
func (l *Link) Recycle(reason string) error { return l.send(msgRecycle + " " + reason) }

func (l *Link) send(msg string) error {
	_, err := l.control.WriteString(msg + "\n")
	return err
}
