package front

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"wsgo/internal/http1"
)

// Cleartext HTTP/2 (--h2c). With prior knowledge, a client opens with
// HTTP/2's preface, which the HTTP/1 server recognises and passes to
// net/http (Protocols' UnencryptedHTTP2). net/http does not implement the
// other way in, RFC 7540's "Upgrade: h2c" (which RFC 9113 has since
// deprecated), so the front does, without a second HTTP/2 implementation:
// it answers 101, reads the client's preface and first SETTINGS frame, and
// gives the connection back (as parking does) to be read first that
// preface, then the upgraded request re-encoded as a HEADERS frame on stream 1, where RFC
// 7540 puts its response, then whatever else the client sent. net/http
// then serves it as any HTTP/2 connection: its limits, graceful shutdown
// and access log apply as to the others.
//
// Only requests without a body are upgraded; the RFC lets a server ignore
// the Upgrade header, and one with a body is served over HTTP/1.1.

// HTTP/2 frame types, flags and limits used here (RFC 9113 section 6).
const (
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameContinuation = 0x9
	flagEndStream     = 0x1
	flagEndHeaders    = 0x4
	frameHeaderLen    = 9
	// maxFrameSize is the largest frame payload a peer must accept before
	// it says otherwise; the client's first SETTINGS stays well below it.
	maxFrameSize = 1 << 14
)

// upgradeH2C upgrades r's connection to HTTP/2 when r asks for it and may
// be, and reports whether it did (the connection is then the server's
// again, or closed).
func (h *Handler) upgradeH2C(w http.ResponseWriter, r *http.Request) bool {
	if !wantsH2C(r) || h.draining.Load() {
		return false
	}
	conn, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	_ = conn.SetDeadline(time.Now().Add(headerTimeout))
	_, err = io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	var first []byte
	if err == nil {
		first, err = readPreface(buffered.Reader)
	}
	_ = conn.SetDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return true
	}
	first = append(first, headersFrames(upgradedHeaders(r))...)
	if n := buffered.Reader.Buffered(); n > 0 {
		rest, _ := buffered.Reader.Peek(n)
		first = append(first, rest...)
	}
	if !h.returnConn(conn, first, nil) {
		conn.Close()
	}
	return true
}

// wantsH2C reports whether r is an HTTP/1.1 request without a body that
// asks to upgrade to h2c, with the HTTP2-Settings header RFC 7540 section
// 3.2 requires.
func wantsH2C(r *http.Request) bool {
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 || r.TLS != nil ||
		r.ContentLength != 0 || len(r.TransferEncoding) > 0 ||
		!http1.HasToken(r.Header["Upgrade"], "h2c") ||
		!http1.HasToken(r.Header["Connection"], "Upgrade") || !http1.HasToken(r.Header["Connection"], "HTTP2-Settings") {
		return false
	}
	settings := r.Header["Http2-Settings"]
	if len(settings) != 1 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(settings[0], "="))
	return err == nil && len(payload)%6 == 0
}

// readPreface reads the client's connection preface and the SETTINGS frame
// that must follow it, and returns them.
func readPreface(r *bufio.Reader) ([]byte, error) {
	buf := make([]byte, len(http1.ClientPreface)+frameHeaderLen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	head := buf[len(http1.ClientPreface):]
	length := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
	if string(buf[:len(http1.ClientPreface)]) != http1.ClientPreface || head[3] != frameSettings || length > maxFrameSize {
		return nil, errBadPreface
	}
	buf = append(buf, make([]byte, length)...)
	_, err := io.ReadFull(r, buf[len(buf)-length:])
	return buf, err
}

var errBadPreface = errors.New("h2c upgrade: no HTTP/2 preface and SETTINGS frame after the 101")

// upgradedHeaders is r's header block as HTTP/2 carries it: the
// pseudo-headers, then every header but those about the HTTP/1.1
// connection, with lower-case names.
func upgradedHeaders(r *http.Request) [][2]string {
	path := r.RequestURI
	if !strings.HasPrefix(path, "/") && path != "*" {
		path = r.URL.RequestURI() // absolute form
	}
	fields := [][2]string{{":method", r.Method}, {":scheme", "http"}, {":authority", r.Host}, {":path", path}}
	for name, values := range r.Header {
		switch name {
		case "Connection", "Upgrade", "Http2-Settings", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Host":
			continue
		}
		lower := strings.ToLower(name)
		for _, v := range values {
			if lower == "te" && v != "trailers" {
				continue
			}
			fields = append(fields, [2]string{lower, v})
		}
	}
	return fields
}

// headersFrames encodes fields as the HEADERS frame (and CONTINUATION
// frames, when over maxFrameSize) of stream 1, which ends the stream. The
// block uses HPACK's literal representation without indexing, which needs
// no table (RFC 7541 section 6.2.2).
func headersFrames(fields [][2]string) []byte {
	var block []byte
	for _, f := range fields {
		block = append(block, 0)
		block = hpackString(block, f[0])
		block = hpackString(block, f[1])
	}
	var out []byte
	typ, flags := byte(frameHeaders), byte(flagEndStream)
	for {
		n := min(len(block), maxFrameSize)
		if n == len(block) {
			flags |= flagEndHeaders
		}
		out = append(out, byte(n>>16), byte(n>>8), byte(n), typ, flags)
		out = binary.BigEndian.AppendUint32(out, 1) // stream 1
		out = append(out, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return out
		}
		typ, flags = frameContinuation, 0
	}
}

// hpackString appends s as an HPACK string literal without Huffman coding:
// its length as an integer with a 7-bit prefix, then its bytes.
func hpackString(b []byte, s string) []byte {
	n := len(s)
	if n < 0x7f {
		b = append(b, byte(n))
	} else {
		b = append(b, 0x7f)
		for n -= 0x7f; n >= 0x80; n >>= 7 {
			b = append(b, byte(n&0x7f|0x80))
		}
		b = append(b, byte(n))
	}
	return append(b, s...)
}
