package xmpp

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"unsafe"
)

// Why this file reaches into crypto/tls.
//
// A crypto/tls.Conn reads through two bytes.Buffers that only ever grow
// (Go 1.26, src/crypto/tls/conn.go): rawInput (line 103) takes whole records
// from the socket (readFromUntil, lines 836-837: Grow(needs+bytes.MinRead),
// then ReadFrom) and hand (line 105) gathers handshake messages
// (readRecordOrCCS, line 786: c.hand.Write; readHandshake, line 1119:
// c.hand.Next). Nothing in the package ever replaces either buffer, and
// bytes.Buffer's Next and Reset keep the array, so both stay as large as the
// largest record and the largest handshake message the connection has seen:
// the ClientHello. Upstream: golang/go#43563 and golang/go#81348, both open.
//
// Go, Chrome and OpenSSL 3.5 clients offer the hybrid X25519MLKEM768 key
// exchange by default, whose 1,216-byte key share makes the ClientHello about
// 1.2 KB longer. That leaves rawInput at 2,048 bytes instead of 576 and hand
// at 1,536 instead of 256 for the rest of the session: 2.7 KB of live heap,
// about 4 KiB of resident memory per idle session at GOGC=50. No exported API
// lets them go, so releaseHandshakeBuffers drops them itself, as crypto/tls
// would if it released them when empty.

// tlsReadBuffers holds the offsets of tls.Conn's read buffers, found by name
// and checked by type, so that a Go release that renames or retypes them
// turns releaseHandshakeBuffers into a no-op rather than a memory error
// (TestReleaseHandshakeBuffers then fails).
type tlsReadBuffers struct {
	rawInput, input, hand uintptr
	ok                    bool
}

var tlsReadBufferOffsets = func() tlsReadBuffers {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, want reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 || f.Type != want {
			return 0, false
		}
		return f.Offset, true
	}
	var b tlsReadBuffers
	var ok1, ok2, ok3 bool
	b.rawInput, ok1 = field("rawInput", reflect.TypeFor[bytes.Buffer]())
	b.input, ok2 = field("input", reflect.TypeFor[bytes.Reader]())
	b.hand, ok3 = field("hand", reflect.TypeFor[bytes.Buffer]())
	b.ok = ok1 && ok2 && ok3
	return b
}()

// releaseHandshakeBuffers lets the garbage collector have the read buffers
// that tc's handshake grew, keeping any bytes they still hold (records the
// peer sent right behind its Finished message). It reports whether it could.
//
// It must be called right after tc's handshake has returned without error,
// on the goroutine that ran it, before anything else reads from tc: it
// touches what tc's read lock guards without taking it. crypto/tls makes
// fresh buffers, sized to the records that follow, on the next read.
func releaseHandshakeBuffers(tc *tls.Conn) bool {
	off := tlsReadBufferOffsets
	if !off.ok || !tc.ConnectionState().HandshakeComplete {
		return false
	}
	base := unsafe.Pointer(tc)
	input := (*bytes.Reader)(unsafe.Add(base, off.input))
	if input.Len() != 0 {
		// Application data not yet read points into rawInput; the
		// handshake never leaves any, so this is only a safeguard.
		return false
	}
	*input = bytes.Reader{}
	shrinkBuffer((*bytes.Buffer)(unsafe.Add(base, off.rawInput)))
	shrinkBuffer((*bytes.Buffer)(unsafe.Add(base, off.hand)))
	return true
}

// shrinkBuffer replaces b's array with one just large enough for what b
// still holds (none when it is empty).
func shrinkBuffer(b *bytes.Buffer) {
	if b.Len() == 0 {
		*b = bytes.Buffer{}
		return
	}
	*b = *bytes.NewBuffer(bytes.Clone(b.Bytes()))
}
