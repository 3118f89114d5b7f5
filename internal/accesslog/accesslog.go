// Package accesslog writes one line per request: in the Apache "combined"
// format extended with the request's duration, worker and priority, or as
// one JSON object.
//
// Lines are formatted by the request's own goroutine into a shared buffer
// that a background goroutine writes out a few times a second, so that a
// busy server makes a handful of write(2) calls a second, not one a request.
// It owns only its output stream (stdout or --log-file, which Reopen opens
// again after a log rotation); it never blocks a request on I/O.
package accesslog

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
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

// Format is how each line is written.
type Format int

const (
	// Combined is Apache's combined format, followed by the duration, the
	// worker ("w15", "w-" for none) and the priority the request was taken
	// from the queue with ("p1000", "p-" for none).
	Combined Format = iota
	// JSON is one object a line, every string escaped.
	JSON
	// Off logs nothing.
	Off
)

// ParseFormat reads a --log-format name.
func ParseFormat(name string) (Format, error) {
	switch name {
	case "combined":
		return Combined, nil
	case "json":
		return JSON, nil
	case "off":
		return Off, nil
	}
	return Off, fmt.Errorf("unknown access log format %q", name)
}

// NoPriority is the Priority of a request that no worker took from the
// queue: a static file, a cache hit, one refused before it queued.
const NoPriority = math.MinInt

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
	Priority  int // its rank when a worker took it, or NoPriority
}

// Logger buffers access log lines for out.
type Logger struct {
	format Format
	path   string     // the file Reopen opens again; "" for stdout
	mu     sync.Mutex // guards buf
	buf    []byte
	wmu    sync.Mutex // guards spare, out and file, and keeps writes in the order their lines were taken
	spare  []byte     // the previous buffer, reused once written
	out    io.Writer
	file   *os.File // out, when it is the file at path
	stamp  atomic.Pointer[stamp]
	stop   chan struct{}
	done   chan struct{}
}

// stamp is the current second, formatted for each format.
type stamp struct {
	second int64
	clf    string // 22/Nov/2026:02:59:24 +0000
	iso    string // 2026-11-22T02:59:24
	zone   string // Z, or +01:00
}

// New starts a Logger writing lines in format to out. For Off it returns
// nil, which logs nothing.
func New(out io.Writer, format Format) *Logger {
	if format == Off {
		return nil
	}
	l := &Logger{format: format, out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go l.flushLoop()
	return l
}

// Open starts a Logger appending lines in format to the file at path,
// created if need be, or to stdout when path is "". For Off it returns nil.
//
// Every worker process opens the file for itself with O_APPEND, and
// writes whole lines at a time, so that lines from several processes never
// interleave.
func Open(path string, format Format) (*Logger, error) {
	if path == "" || format == Off {
		return New(os.Stdout, format), nil
	}
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	l := New(f, format)
	l.path, l.file = path, f
	return l, nil
}

func openAppend(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
}

// Reopen opens the log file again, for log rotation: once the old file is
// renamed, lines go to a new one with the configured name. The lines
// logged before the call still go to the old file. It does nothing when
// the log goes to stdout (or is off); on error the old file stays in use.
func (l *Logger) Reopen() error {
	if l == nil || l.path == "" {
		return nil
	}
	f, err := openAppend(l.path)
	if err != nil {
		return err
	}
	l.wmu.Lock()
	l.flushLocked()
	old := l.file
	l.out, l.file = f, f
	l.wmu.Unlock()
	return old.Close()
}

// Log appends e's line to the buffer.
func (l *Logger) Log(e *Entry, now time.Time) {
	ts := l.timestamp(now)
	l.mu.Lock()
	if l.format == JSON {
		l.buf = appendJSON(l.buf, e, ts, now)
	} else {
		l.buf = appendCombined(l.buf, e, ts)
	}
	full := len(l.buf) >= flushSize
	l.mu.Unlock()
	if full {
		l.Flush()
	}
}

func appendCombined(b []byte, e *Entry, ts *stamp) []byte {
	b = appendEscaped(b, e.Client)
	b = append(b, " - - ["...)
	b = append(b, ts.clf...)
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
	b = appendMillis(b, e.Duration)
	b = append(b, "ms w"...)
	if e.Worker >= 0 {
		b = strconv.AppendInt(b, int64(e.Worker), 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, " p"...)
	if e.Priority != NoPriority {
		b = strconv.AppendInt(b, int64(e.Priority), 10)
	} else {
		b = append(b, '-')
	}
	return append(b, '\n')
}

// appendJSON appends e as one JSON object; worker and priority are null
// when there are none.
func appendJSON(b []byte, e *Entry, ts *stamp, now time.Time) []byte {
	b = append(b, `{"time":"`...)
	b = append(b, ts.iso...)
	b = append(b, '.')
	ms := now.Nanosecond() / int(time.Millisecond)
	b = append(b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10))
	b = append(b, ts.zone...)
	b = append(b, `","client":`...)
	b = appendJSONString(b, e.Client)
	b = append(b, `,"method":`...)
	b = appendJSONString(b, e.Method)
	b = append(b, `,"uri":`...)
	b = appendJSONString(b, e.URI)
	b = append(b, `,"proto":`...)
	b = appendJSONString(b, e.Proto)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, e.Bytes, 10)
	b = append(b, `,"referer":`...)
	b = appendJSONString(b, e.Referer)
	b = append(b, `,"user_agent":`...)
	b = appendJSONString(b, e.UserAgent)
	b = append(b, `,"duration_ms":`...)
	b = appendMillis(b, e.Duration)
	b = append(b, `,"worker":`...)
	if e.Worker >= 0 {
		b = strconv.AppendInt(b, int64(e.Worker), 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"priority":`...)
	if e.Priority != NoPriority {
		b = strconv.AppendInt(b, int64(e.Priority), 10)
	} else {
		b = append(b, "null"...)
	}
	return append(b, "}\n"...)
}

// appendMillis appends d in milliseconds with three decimals.
func appendMillis(b []byte, d time.Duration) []byte {
	return strconv.AppendFloat(b, float64(d.Microseconds())/1000, 'f', 3, 64)
}

// timestamp formats now to the second, once per second.
func (l *Logger) timestamp(now time.Time) *stamp {
	sec := now.Unix()
	if s := l.stamp.Load(); s != nil && s.second == sec {
		return s
	}
	s := &stamp{second: sec, clf: now.Format("02/Jan/2006:15:04:05 -0700"),
		iso: now.Format("2006-01-02T15:04:05"), zone: now.Format("Z07:00")}
	l.stamp.Store(s)
	return s
}

// Flush writes out what is buffered.
func (l *Logger) Flush() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.flushLocked()
}

// flushLocked is Flush with wmu held.
func (l *Logger) flushLocked() {
	l.mu.Lock()
	b := l.buf
	l.buf = l.spare[:0]
	l.mu.Unlock()
	writeLines(l.out, b)
	l.spare = b
}

// Close flushes, stops the background writer and closes the log file.
func (l *Logger) Close() {
	if l == nil {
		return
	}
	close(l.stop)
	<-l.done
	l.Flush()
	if l.file != nil {
		l.file.Close()
	}
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

// appendJSONString appends s as a JSON string. Quotes, backslashes and
// control characters are escaped, and so are U+2028 and U+2029 (which end
// lines in JavaScript), so that no header value can end the string, add a
// field or split the line; bytes that are not UTF-8 become U+FFFD, since
// JSON text must be UTF-8.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			b = append(b, c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hex[r&15])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
