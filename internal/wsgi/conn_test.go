package wsgi

import (
	"bytes"
	"io"
	"net"
	"testing"
)

// pair returns the two ends of a loopback TCP connection, the server's
// wrapped in a DirectConn.
func pair(t *testing.T) (*DirectConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return NewDirectConn(server.(*net.TCPConn)), client
}

// TestDirectConnGathers: what is written while gathering reaches the
// client whole and in order, whether the held write goes out with the
// next one or at Release, and a held write is a copy, since its writer
// reuses the buffer once Write returns.
func TestDirectConnGathers(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes int // while gathering
	}{
		{"nothing held", 0},
		{"held until Release", 1},
		{"held and sent with the next write", 2},
		{"after the gathered pair", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, client := pair(t)
			var want []byte
			buf := make([]byte, 4096)
			conn.Gather()
			for i := range tc.writes {
				for j := range buf {
					buf[j] = byte(i + j)
				}
				want = append(want, buf...)
				if n, err := conn.Write(buf); n != len(buf) || err != nil {
					t.Fatalf("write %d: %d, %v", i, n, err)
				}
				clear(buf) // as bufio does with its buffer
			}
			if err := conn.Release(); err != nil {
				t.Fatal(err)
			}
			after := []byte("after release")
			want = append(want, after...)
			if _, err := conn.Write(after); err != nil {
				t.Fatal(err)
			}
			conn.CloseWrite()
			got, err := io.ReadAll(client)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("client read %d bytes, want %d, or not the same ones", len(got), len(want))
			}
		})
	}
}
