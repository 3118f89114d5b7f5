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
// workerEnv set to "SLOT:GENERATION:PROCESSES", the slot's listening socket
// as file descriptor 3 and the write end of a control pipe as 4.
const (
	workerEnv   = "WSGO_WORKER"
	listenFD    = 3
	controlFD   = 4
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
	control   *os.File
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
		if err != nil || len(parts) != 3 {
			return nil, fmt.Errorf("malformed %s=%q", workerEnv, v)
		}
		nums[i] = n
	}
	os.Unsetenv(workerEnv) // not for the app's own subprocesses
	return &Link{Slot: nums[0], Generation: nums[1], Processes: nums[2],
		control: os.NewFile(controlFD, "wsgo-control")}, nil
}

// Listener returns the slot's listening socket, which the supervisor keeps
// open across worker restarts and reloads so that no queued connection is
// lost.
func (l *Link) Listener() (net.Listener, error) {
	f := os.NewFile(listenFD, "wsgo-listener")
	if f == nil {
		return nil, errors.New("no listening socket from the supervisor")
	}
	defer f.Close() // FileListener holds its own copy
	return net.FileListener(f)
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
