package xmpp

import "testing"

// Counts wrap around at 2^32 (XEP-0198 §4): an h that crosses zero
// acknowledges what was sent across it, and one beyond what was sent is an
// error.
func TestSMAckWrapsAround(t *testing.T) {
	srv := &Server{SMMaxUnacked: 100, QueueBytes: 1 << 20}
	s := &Session{srv: srv}
	sm := &smState{out: 1<<32 - 3, acked: 1<<32 - 3}
	for i := 0; i < 6; i++ {
		if err := sm.sent(s, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if sm.out != 3 {
		t.Fatalf("out = %d after wrapping, want 3", sm.out)
	}
	if err := sm.ack(1); err != nil { // 2^32-3 .. 2^32-1, 0, 1: four acked
		t.Fatal(err)
	}
	if len(sm.unacked) != 2 || sm.unacked[0][0] != 4 {
		t.Fatalf("unacked after h=1: %v", sm.unacked)
	}
	if err := sm.ack(4); err == nil {
		t.Fatal("h beyond what was sent accepted")
	}
	if err := sm.ack(3); err != nil || len(sm.unacked) != 0 || sm.bytes != 0 {
		t.Fatalf("after h=3: %v, %d unacked, %d bytes", err, len(sm.unacked), sm.bytes)
	}
	// An h older than the last (a client repeating itself) acknowledges
	// nothing new; far behind counts as beyond.
	if err := sm.ack(3); err != nil {
		t.Fatal(err)
	}
}
