package redis

import (
	"testing"
)

// A room's lease: the first node to ask hosts it, the others are told
// so; a node that dies loses it to the next that asks, a node that
// restarts under its name too (a new incarnation); a release frees it.
func TestRoomLease(t *testing.T) {
	ctx := t.Context()
	a, b := open(t, Options{Node: "a"}), open(t, Options{Node: "b"})
	host := func(r *Registry) string {
		t.Helper()
		n, err := r.HostRoom(ctx, "r@conference.example")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if h := host(a); h != "a" {
		t.Fatalf("first asker: host %q, want a", h)
	}
	if h := host(b); h != "a" {
		t.Fatalf("second asker: host %q, want a", h)
	}
	if ok, err := a.HostsRoom(ctx, "r@conference.example"); err != nil || !ok {
		t.Fatalf("HostsRoom(a) = %v, %v", ok, err)
	}
	if err := a.SaveOccupant(ctx, "r@conference.example", "u@example/1", []byte("rec")); err != nil {
		t.Fatal(err)
	}
	a.crash()
	// Until a's node key expires the lease stays a's; then b takes it.
	await(t, 3*testTTL, "the lease taken over", func() bool { return host(b) == "b" })
	occ, err := b.RoomOccupants(ctx, "r@conference.example")
	if err != nil || string(occ["u@example/1"]) != "rec" || len(occ) != 1 {
		t.Fatalf("occupants after the takeover: %q, %v", occ, err)
	}
	// a restarted under its name is another incarnation: b keeps it.
	a2 := open(t, Options{Node: "a"})
	if h := host(a2); h != "b" {
		t.Fatalf("after a's restart: host %q, want b", h)
	}
	if ok, _ := a2.HostsRoom(ctx, "r@conference.example"); ok {
		t.Fatal("the restarted a thinks it hosts the room")
	}
	// Releasing is the holder's alone.
	if err := a2.ReleaseRoom(ctx, "r@conference.example", true); err != nil {
		t.Fatal(err)
	}
	if h := host(a2); h != "b" {
		t.Fatalf("a non-holder's release freed the lease: host %q", h)
	}
	if err := b.DropOccupant(ctx, "r@conference.example", "u@example/1"); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveOccupant(ctx, "r@conference.example", "v@example/2", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := b.ReleaseRoom(ctx, "r@conference.example", true); err != nil {
		t.Fatal(err)
	}
	if occ, _ := b.RoomOccupants(ctx, "r@conference.example"); len(occ) != 0 {
		t.Fatalf("occupants after a release that forgets them: %q", occ)
	}
	if h := host(a2); h != "a" {
		t.Fatalf("after the release: host %q, want a (the asker)", h)
	}
}
