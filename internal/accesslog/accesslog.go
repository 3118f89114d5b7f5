// Package accesslog writes one line per request, in the Apache "combined"
// format extended with the request's duration and worker.
//
// Lines are formatted by the request's own goroutine into a shared buffer
// that a background goroutine writes out a few times a second, so that a
// busy server makes a handful of write(2) calls a second, not one a request.
// It owns only its output stream; it never blocks a request on I/O.
package accesslog

import (
	"bytes"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// flushEvery bounds how long a line waits in memory; flushSize how much.
const (
	flushEvery = 100 * time.Millisecond
	flushSize  = 64 << 10
)

// Entry is what is logged of one request.
type Entry struct {
	Client    string // the client's address, without port
	Method    string
	URI       string // the request target as sent
	Proto     string
	Status    int
	Bytes     int64
	Referer   string
	UserAgent string
	Duration  time.Duration
	Worker    int // -1 when no worker ran it
}

// Logger buffers access log lines for out.
type Logger struct {
	mu    sync.Mutex // guards buf
	buf   []byte
	wmu   sync.Mutex // guards spare, and keeps writes in the order their lines were taken
	spare []byte     // the previous buffer, reused once written
	out   io.Writer
	stamp atomic.Pointer[stamp]
	stop  chan struct{}
	done  chan struct{}
}

type stamp struct {
	second int64
	text   string
}

// New starts a Logger writing to out.
func New(out io.Writer) *Logger {
	l := &Logger{out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flushLoop()
	return l
}

// Log appends e's line to the buffer.
func (l *Logger) Log(e *Entry, now time.Time) {
	ts := l.timestamp(now)
	l.mu.Lock()
	b := l.buf
	b = appendEscaped(b, e.Client)
	b = append(b, " - - ["...)
	b = append(b, ts...)
	b = append(b, "] \""...)
	b = appendEscaped(b, e.Method)
	b = append(b, ' ')
	b = appendEscaped(b, e.URI)
	b = append(b, ' ')
	b = appendEscaped(b, e.Proto)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, " \""...)
	b = appendEscaped(b, orDash(e.Referer))
	b = append(b, "\" \""...)
	b = appendEscaped(b, orDash(e.UserAgent))
	b = append(b, "\" "...)
	b = strconv.AppendFloat(b, float64(e.Duration.Microseconds())/1000, 'f', 3, 64)
	b = append(b, "ms w"...)
	if e.Worker >= 0 {
		b = strconv.AppendInt(b, int64(e.Worker), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, '\n')
	l.buf = b
	full := len(b) >= flushSize
	l.mu.Unlock()
	if full {
		l.Flush()
	}
}

// timestamp formats now to the second, once per second.
func (l *Logger) timestamp(now time.Time) string {
	sec := now.Unix()
	if s := l.stamp.Load(); s != nil && s.second == sec {
		return s.text
	}
	s := &stamp{sec, now.Format("02/Jan/2006:15:04:05 -0700")}
	l.stamp.Store(s)
	return s.text
}

// Flush writes out what is buffered.
func (l *Logger) Flush() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	b := l.buf
	l.buf = l.spare[:0]
	l.mu.Unlock()
	writeLines(l.out, b)
	l.spare = b
}

// Close flushes and stops the background writer.
func (l *Logger) Close() {
	close(l.stop)
	<-l.done
	l.Flush()
}

func (l *Logger) flushLoop() {
	defer close(l.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.Flush()
		case <-l.stop:
			return
		}
	}
}

// atomicWrite is the most a write(2) to a pipe may carry and still not be
// interleaved with another process's writes (PIPE_BUF on Linux). Worker
// processes share stdout, so lines are written in runs no longer than this.
const atomicWrite = 4096

// writeLines writes b, whole lines at a time, in runs of at most
// atomicWrite bytes (a longer line goes alone).
func writeLines(out io.Writer, b []byte) {
	for len(b) > 0 {
		n := len(b)
		if n > atomicWrite {
			n = bytes.LastIndexByte(b[:atomicWrite], '\n') + 1
			if n == 0 {
				n = bytes.IndexByte(b, '\n') + 1
			}
		}
		out.Write(b[:n]) //nolint:errcheck // nowhere better to report a failing log
		b = b[n:]
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// appendEscaped appends s with quotes, backslashes, control characters and
// invalid UTF-8 escaped, so that a client cannot forge or break a line.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			if r, size := utf8.DecodeRuneInString(s[i:]); r != utf8.RuneError || size > 1 {
				b = append(b, s[i:i+size]...)
				i += size
				continue
			}
		}
		b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
		i++
	}
	return b
}
