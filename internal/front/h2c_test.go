package front

import (
	"bytes"
	"encoding/binary"
	"net/http"
	"strings"
	"testing"
)

func TestHPACKString(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []byte // the length prefix
	}{
		{0, []byte{0}},
		{126, []byte{126}},
		{127, []byte{0x7f, 0}},
		{200, []byte{0x7f, 73}},
		{1337, []byte{0x7f, 0xba, 0x09}}, // 1337-127 = 1210 = 9*128 + 58, as RFC 7541 C.1.2 counts
	} {
		got := hpackString(nil, strings.Repeat("a", tc.n))
		if want := append(tc.want, strings.Repeat("a", tc.n)...); !bytes.Equal(got, want) {
			t.Errorf("length %d: prefix % x, want % x", tc.n, got[:len(got)-tc.n], tc.want)
		}
	}
}

func TestHeadersFrames(t *testing.T) {
	fields := [][2]string{{":method", "GET"}, {"x-long", strings.Repeat("v", 40000)}}
	out := headersFrames(fields)
	var block []byte
	var types, flags []byte
	for len(out) > 0 {
		n := int(out[0])<<16 | int(out[1])<<8 | int(out[2])
		if n > maxFrameSize || binary.BigEndian.Uint32(out[5:9]) != 1 {
			t.Fatalf("frame of %d bytes on stream %d", n, binary.BigEndian.Uint32(out[5:9]))
		}
		types, flags = append(types, out[3]), append(flags, out[4])
		block = append(block, out[9:9+n]...)
		out = out[9+n:]
	}
	if !bytes.Equal(types, []byte{frameHeaders, frameContinuation, frameContinuation}) ||
		!bytes.Equal(flags, []byte{flagEndStream, 0, flagEndHeaders}) {
		t.Errorf("frame types % x, flags % x", types, flags)
	}
	want := append([]byte{0}, hpackString(nil, ":method")...)
	want = append(want, hpackString(nil, "GET")...)
	// 0, "x-long" with its length, 40000 with a 4-byte length, the value.
	if !bytes.HasPrefix(block, want) || len(block) != len(want)+1+1+6+4+40000 {
		t.Errorf("header block of %d bytes starts % x", len(block), block[:16])
	}
}

func TestWantsH2C(t *testing.T) {
	req := func(mod func(r *http.Request)) *http.Request {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		r.Header.Set("Connection", "Upgrade, HTTP2-Settings")
		r.Header.Set("Upgrade", "h2c")
		r.Header.Set("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")
		if mod != nil {
			mod(r)
		}
		return r
	}
	if !wantsH2C(req(nil)) {
		t.Error("a valid upgrade request was refused")
	}
	for name, mod := range map[string]func(*http.Request){
		"no HTTP2-Settings":  func(r *http.Request) { r.Header.Del("Http2-Settings") },
		"two HTTP2-Settings": func(r *http.Request) { r.Header.Add("Http2-Settings", "") },
		"bad HTTP2-Settings": func(r *http.Request) { r.Header.Set("Http2-Settings", "AAMAA") },
		"not in Connection":  func(r *http.Request) { r.Header.Set("Connection", "Upgrade") },
		"other upgrade":      func(r *http.Request) { r.Header.Set("Upgrade", "websocket") },
		"a body":             func(r *http.Request) { r.ContentLength = 5 },
		"HTTP/1.0":           func(r *http.Request) { r.ProtoMinor = 0 },
		"chunked body":       func(r *http.Request) { r.TransferEncoding = []string{"chunked"} },
	} {
		if wantsH2C(req(mod)) {
			t.Errorf("%s: upgraded", name)
		}
	}
}
