package wsgi

import (
	"io"
	"net"
	"sync"
)

// DirectConn is a client's plain TCP connection, as the server accepted
// it. net/http writes every response through it; a worker also writes
// past net/http, in two cases:
//
//   - A streamed chunk is framed and sent in one writev(2) (worker.stream).
//   - A body of known length larger than net/http's 4 KiB buffer: net/http
//     would write the buffer (headers and the body's start) and then the
//     rest, two system calls and, on loopback, one more segment for the
//     kernel to carry. Between Gather and Release the buffer's flush is
//     held back and goes out with the next write, in one writev(2).
//
// Gather and Release are for the goroutine writing the response, while
// nothing else writes to the connection; on a nil *DirectConn they do
// nothing.
type DirectConn struct {
	*net.TCPConn
	gathering bool
	held      *[]byte // a copy of the write held back, from heldBuffers
}

// NewDirectConn wraps c.
func NewDirectConn(c *net.TCPConn) *DirectConn { return &DirectConn{TCPConn: c} }

// heldBuffers are the copies of held writes: net/http reuses its buffer
// as soon as Write returns. Pooled, so that an idle connection keeps none.
var heldBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// Write sends p; while gathering, it holds the first write back and sends
// it with the second.
func (c *DirectConn) Write(p []byte) (int, error) {
	if !c.gathering {
		return c.TCPConn.Write(p)
	}
	if c.held == nil {
		c.held = heldBuffers.Get().(*[]byte)
		*c.held = append((*c.held)[:0], p...)
		return len(p), nil
	}
	c.gathering = false
	held := len(*c.held)
	bufs := net.Buffers{*c.held, p}
	n, err := bufs.WriteTo(c.TCPConn)
	c.putHeld()
	return max(0, int(n)-held), err
}

// ReadFrom sends what is held, then copies from r with the TCP
// connection's own ReadFrom, which is sendfile(2) for a file.
func (c *DirectConn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.Release(); err != nil {
		return 0, err
	}
	return c.TCPConn.ReadFrom(r)
}

// Gather starts holding writes back, as described above.
func (c *DirectConn) Gather() {
	if c != nil {
		c.gathering = true
	}
}

// Release stops gathering and sends what is still held.
func (c *DirectConn) Release() error {
	if c == nil {
		return nil
	}
	c.gathering = false
	if c.held == nil {
		return nil
	}
	_, err := c.TCPConn.Write(*c.held)
	c.putHeld()
	return err
}

func (c *DirectConn) putHeld() {
	heldBuffers.Put(c.held)
	c.held = nil
}
