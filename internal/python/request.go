package python

import (
	"encoding/binary"
	"fmt"
)

// Field names a request value that becomes a fixed environ key. Fields must
// be given to a Request in this order.
type Field int

// The fixed environ fields, in packing order (wsgo.h: WSGO_F_*).
const (
	Method        Field = iota // REQUEST_METHOD
	Path                       // PATH_INFO, already percent-decoded
	Query                      // QUERY_STRING
	Protocol                   // SERVER_PROTOCOL
	Scheme                     // wsgi.url_scheme
	RemoteAddr                 // REMOTE_ADDR
	RemotePort                 // REMOTE_PORT
	ServerName                 // SERVER_NAME
	ServerPort                 // SERVER_PORT
	ContentType                // CONTENT_TYPE, absent when the request has none
	ContentLength              // CONTENT_LENGTH, absent when unknown
	HTTPS                      // HTTPS: "on" when the scheme is https, else absent
	numFields
)

// Request packs one request's strings into a single buffer, which the C side
// turns into the environ dict in one call. The buffer is reused between
// requests, so packing allocates nothing once it has grown.
//
// Layout: numFields of [int32 length][bytes] (length -1: absent), then
// [uint32 count] and count headers of [uint32][name][uint32][value].
type Request struct {
	buf      []byte
	fields   int
	countAt  int
	nheaders uint32
}

// Reset empties the request for reuse.
func (r *Request) Reset() {
	r.buf = r.buf[:0]
	r.fields = 0
	r.countAt = 0
	r.nheaders = 0
}

// Set gives the next field, which must be f, its value.
func (r *Request) Set(f Field, value string) {
	r.next(f)
	r.buf = binary.NativeEndian.AppendUint32(r.buf, uint32(len(value)))
	r.buf = append(r.buf, value...)
}

// Absent marks the next field, which must be f, as not present.
func (r *Request) Absent(f Field) {
	r.next(f)
	r.buf = binary.NativeEndian.AppendUint32(r.buf, ^uint32(0))
}

func (r *Request) next(f Field) {
	if int(f) != r.fields {
		panic(fmt.Sprintf("python.Request: field %d given in place of %d", f, r.fields))
	}
	r.fields++
}

// startHeaders places the header count after the last field, once.
func (r *Request) startHeaders() {
	if r.fields != int(numFields) {
		panic("python.Request: not every field was given")
	}
	if r.countAt == 0 {
		r.countAt = len(r.buf)
		r.buf = append(r.buf, 0, 0, 0, 0)
	}
}

// Header adds a request header with one value. name is as received; the C
// side derives the HTTP_* key.
func (r *Request) Header(name, value string) {
	r.headerName(name)
	r.buf = binary.NativeEndian.AppendUint32(r.buf, uint32(len(value)))
	r.buf = append(r.buf, value...)
}

// HeaderJoined adds a request header whose values are joined with sep.
func (r *Request) HeaderJoined(name string, values []string, sep string) {
	r.headerName(name)
	n := len(sep) * (len(values) - 1)
	for _, v := range values {
		n += len(v)
	}
	r.buf = binary.NativeEndian.AppendUint32(r.buf, uint32(n))
	for i, v := range values {
		if i > 0 {
			r.buf = append(r.buf, sep...)
		}
		r.buf = append(r.buf, v...)
	}
}

func (r *Request) headerName(name string) {
	r.startHeaders()
	r.nheaders++
	r.buf = binary.NativeEndian.AppendUint32(r.buf, uint32(len(name)))
	r.buf = append(r.buf, name...)
}

// finish completes the header count and returns the packed bytes.
func (r *Request) finish() []byte {
	r.startHeaders()
	binary.NativeEndian.PutUint32(r.buf[r.countAt:], r.nheaders)
	return r.buf
}
