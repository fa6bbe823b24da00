package mam

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"sync"
	"time"
)

// IDLen is the length of every archive id.
const IDLen = 20

// idEncoding is base32hex in lower case, without padding: its alphabet is
// in ASCII order, so that ids of one length sort as the bytes they encode.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// IDs makes archive ids (XEP-0359 stanza-ids, XEP-0313 archive ids):
// IDLen characters that encode the time in milliseconds (48 bits), a
// counter within the millisecond (16 bits) and 32 random bits chosen when
// the generator is made. Ids of one generator strictly increase in byte
// order, even when the clock steps back; ids of several nodes, or of one
// node across a restart, differ by their random bits and interleave by
// time, so that an archive written by several nodes stays in time order
// to the millisecond. Use one generator per process: NewIDs.
type IDs struct {
	mu   sync.Mutex
	ms   uint64
	seq  uint16
	node uint32
}

// NewIDs returns a generator with fresh random bits.
func NewIDs() *IDs {
	var b [4]byte
	rand.Read(b[:])
	return &IDs{node: binary.BigEndian.Uint32(b[:])}
}

// Next returns a new id for a message archived at now.
func (g *IDs) Next(now time.Time) string {
	ms := uint64(now.UnixMilli())
	g.mu.Lock()
	switch {
	case ms > g.ms:
		g.ms, g.seq = ms, 0
	case g.seq == 0xffff:
		// The counter is spent (or the clock stepped back and it ran
		// out): borrow the next millisecond.
		g.ms, g.seq = g.ms+1, 0
	default:
		g.seq++
	}
	ms, seq := g.ms, g.seq
	g.mu.Unlock()
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], ms<<16|uint64(seq))
	binary.BigEndian.PutUint32(b[8:], g.node)
	return idEncoding.EncodeToString(b[:])
}

// IDTime returns the time, to the millisecond, that an id of IDs encodes,
// and false for a string that is not such an id.
func IDTime(id string) (time.Time, bool) {
	if len(id) != IDLen {
		return time.Time{}, false
	}
	b, err := idEncoding.DecodeString(id)
	if err != nil || len(b) != 12 {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8]) >> 16)).UTC(), true
}
