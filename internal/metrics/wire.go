package metrics

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protodelim"
)

// The channel between the supervisor and a worker process is a socket
// pair the supervisor makes for each worker it starts. It was chosen over
// a socket in the file system (nothing to create, clean up or protect, and
// it dies with the process) and over snapshots pushed at intervals
// (a scrape sees the counts of that moment, and nothing runs between
// scrapes).
//
// The supervisor asks with one byte; the worker answers with a frame: its
// registry's metric families as length-delimited protobuf messages, after
// the frame's length as 4 bytes, big-endian. When it stops, a worker sends
// one last frame unasked, so that the supervisor keeps its final counts.
const (
	askSnapshot = 'm'
	// maxFrame bounds a frame the supervisor accepts (a worker's is some
	// tens of KiB).
	maxFrame = 64 << 20
	// sendTimeout bounds writing a frame: a supervisor that does not read
	// must not hold up a worker's exit.
	sendTimeout = 2 * time.Second
)

// Serve answers the supervisor's requests on conn in the background until
// conn is closed (by Final, or by the supervisor's end).
func (p *Process) Serve(conn net.Conn) {
	if p == nil {
		return
	}
	p.conn = conn
	go func() {
		ask := make([]byte, 1)
		for {
			if _, err := conn.Read(ask); err != nil {
				return
			}
			if p.send() != nil {
				return
			}
		}
	}()
}

// Final sends the process's last counts, unasked, and closes the channel.
// Call it once the process serves nothing more.
func (p *Process) Final() {
	if p == nil || p.conn == nil {
		return
	}
	p.send() //nolint:errcheck // the supervisor then keeps the counts of its last scrape
	p.conn.Close()
}

// send writes one frame with the registry's current families.
func (p *Process) send() error {
	families, err := p.reg.Gather()
	if err != nil && len(families) == 0 {
		return err
	}
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	for _, f := range families {
		if _, err := protodelim.MarshalTo(&buf, f); err != nil {
			return err
		}
	}
	frame := buf.Bytes()
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = p.conn.SetWriteDeadline(time.Now().Add(sendTimeout))
	_, err = p.conn.Write(frame)
	return err
}

// readFrame reads the next frame from a worker and decodes its families.
func readFrame(r io.Reader) ([]*dto.MetricFamily, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > maxFrame {
		return nil, fmt.Errorf("metrics frame of %d bytes", n)
	}
	body := bufio.NewReader(io.LimitReader(r, int64(n)))
	var families []*dto.MetricFamily
	for {
		f := &dto.MetricFamily{}
		err := protodelim.UnmarshalFrom(body, f)
		if errors.Is(err, io.EOF) {
			return families, nil
		}
		if err != nil {
			return nil, err
		}
		families = append(families, f)
	}
}
