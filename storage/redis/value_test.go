package redis

import (
	"bytes"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

func TestValueRoundTrip(t *testing.T) {
	owner := ownerPrefix("node:1", "0123456789abcdef")
	for _, r := range []storage.Resource{
		{},
		{Available: true, Priority: -128, Presence: []byte{}},
		{Available: true, Priority: 127, Presence: []byte("<presence/>")},
		{Priority: 1 << 30, Presence: []byte{0, 0xff}},
	} {
		v := encodeValue(owner, r)
		if !bytes.HasPrefix(v, owner) {
			t.Errorf("encodeValue(%+v) = %q does not start with the owner part", r, v)
		}
		got, inc, err := decodeValue(v)
		r.Node = "node:1"
		if err != nil || inc != "0123456789abcdef" || got.Node != r.Node || got.Available != r.Available ||
			got.Priority != r.Priority || !bytes.Equal(got.Presence, r.Presence) || (got.Presence == nil) != (r.Presence == nil) {
			t.Errorf("decodeValue(encodeValue(%+v)) = %+v, %q, %v", r, got, inc, err)
		}
	}
}

func FuzzDecodeValue(f *testing.F) {
	f.Add(encodeValue(ownerPrefix("a", "b"), storage.Resource{Available: true, Priority: 3, Presence: []byte("<presence/>")}))
	f.Add([]byte{valueVersion, 0x80})
	f.Add([]byte{valueVersion, 1, 'a', 1, 'b', flagPresence})
	f.Fuzz(func(t *testing.T, v []byte) {
		r, inc, err := decodeValue(v)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes, but for overlong
		// varints, which decode leniently.
		again := encodeValue(ownerPrefix(r.Node, inc), r)
		r2, inc2, err := decodeValue(again)
		if err != nil || r2.Node != r.Node || inc2 != inc || r2.Available != r.Available || r2.Priority != r.Priority ||
			!bytes.Equal(r2.Presence, r.Presence) || (r2.Presence == nil) != (r.Presence == nil) {
			t.Fatalf("re-decoding %q: %+v, %v; want %+v", again, r2, err, r)
		}
	})
}
