package muc

import (
	"strconv"
	"testing"
	"time"

	"mellium.im/xmpp/jid"
)

// TestForwards: an answer is matched by id, by the occupant JID it comes
// to and by who sends it, once; entries expire after forwardTimeout and
// the bookkeeping shrinks with them; one sender and the whole service
// have bounds.
func TestForwards(t *testing.T) {
	f := newForwards()
	now := time.Unix(1000, 0)
	f.now = func() time.Time { return now }
	bob := jid.MustParse("bob@example.com/phone")
	entry := func(sender string) forwardedIQ {
		return forwardedIQ{via: "room@conf.example.com/alice", dest: bob, sender: sender, origID: "orig", occupant: "room@conf.example.com/bob"}
	}
	id, ok := f.add(entry("alice@example.com/r"))
	if !ok || id == "" {
		t.Fatal("add refused")
	}
	id2, _ := f.add(entry("alice@example.com/r"))
	if id2 == id {
		t.Fatalf("two entries share the id %q", id)
	}
	if _, ok := f.take(id, "room@conf.example.com/mallory", bob); ok {
		t.Fatal("an answer to another occupant JID was taken")
	}
	if _, ok := f.take(id, "room@conf.example.com/alice", jid.MustParse("mallory@example.com/x")); ok {
		t.Fatal("an answer from someone else was taken")
	}
	if _, ok := f.take(id, "room@conf.example.com/alice", bob.Bare()); ok {
		t.Fatal("an answer from the bare JID was taken for a request to the full JID")
	}
	p, ok := f.take(id, "room@conf.example.com/alice", bob)
	if !ok || p.origID != "orig" || p.sender != "alice@example.com/r" || p.occupant != "room@conf.example.com/bob" {
		t.Fatalf("take = %+v, %v", p, ok)
	}
	if _, ok := f.take(id, "room@conf.example.com/alice", bob); ok {
		t.Fatal("an answer was taken twice")
	}

	// Expiry: id2 is forgotten once its time is up.
	now = now.Add(forwardTimeout + time.Second)
	if _, ok := f.take(id2, "room@conf.example.com/alice", bob); ok {
		t.Fatal("an expired entry was taken")
	}
	if n := f.waiting(); n != 0 || len(f.queue) != 0 || len(f.bySender) != 0 {
		t.Fatalf("after expiry: %d waiting, queue %d, senders %d", n, len(f.queue), len(f.bySender))
	}

	// One sender's bound.
	for i := range maxForwardedPerSender {
		if _, ok := f.add(entry("greedy@example.com/r")); !ok {
			t.Fatalf("add %d refused", i)
		}
	}
	if _, ok := f.add(entry("greedy@example.com/r")); ok {
		t.Fatal("one sender went past its bound")
	}
	if _, ok := f.add(entry("other@example.com/r")); !ok {
		t.Fatal("another sender was refused")
	}

	// The service's bound, and a queue of answered entries that does
	// not grow past twice the bound.
	now = now.Add(forwardTimeout + time.Second)
	for i := range maxForwarded {
		if _, ok := f.add(entry("s" + strconv.Itoa(i%500) + "@example.com/r")); !ok {
			t.Fatalf("add %d refused", i)
		}
	}
	if _, ok := f.add(entry("late@example.com/r")); ok {
		t.Fatal("the service went past its bound")
	}
	for id, p := range f.byID {
		f.take(id, p.via, p.dest)
	}
	for range 3 * maxForwarded {
		id, ok := f.add(entry("busy@example.com/r"))
		if !ok {
			t.Fatal("add refused with nothing waiting")
		}
		f.take(id, "room@conf.example.com/alice", bob)
	}
	if len(f.queue) > 2*maxForwarded+1 {
		t.Fatalf("the queue holds %d entries for %d waiting", len(f.queue), f.waiting())
	}
}
