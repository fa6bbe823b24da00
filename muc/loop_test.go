package muc_test

import (
	"context"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/xmpp"
)

// TestSelfInvite: a room invited to itself (issue 15) used to route the
// invitation back into the room while it held its own lock, so that the
// inviter's stream, the room and the server's shutdown hung. Now the
// invitation is refused, and everything keeps working: the inviter is
// served, the room and another room still take joins and messages, and
// the server shuts down.
func TestSelfInvite(t *testing.T) {
	s := start(t)
	alice, bob := user(t, s, "alice"), user(t, s, "bob")
	room := "loop@" + service
	create(t, alice, "loop", "alice")

	for i, to := range []string{room, "other@" + service, service, room + "/alice"} {
		id := "inv" + string(rune('0'+i))
		alice.SendRaw(t, `<message id="`+id+`" to="`+room+`"><x xmlns="`+muc.NSUser+`"><invite to="`+to+`"/></x></message>`)
		e := alice.Expect(t, "refused invitation to "+to, func(el *xmpp.Element) bool { return el.Get("id") == id })
		if e.Get("type") != "error" || errorCondition(e) != "item-not-found" {
			t.Fatalf("invitation to %s: %v", to, e)
		}
	}
	// A decline sent on to the service is refused in the same way.
	alice.SendRaw(t, `<message id="dec" to="`+room+`"><x xmlns="`+muc.NSUser+`"><decline to="`+room+`"/></x></message>`)
	if e := alice.Expect(t, "refused decline", func(el *xmpp.Element) bool { return el.Get("id") == "dec" }); errorCondition(e) != "item-not-found" {
		t.Fatalf("decline to the room: %v", e)
	}

	// The inviter is still served.
	alice.SendRaw(t, `<iq type="get" id="p1" to="`+testenv.Domain+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if r := alice.Expect(t, "ping answer", iqResult("p1")); r.Get("type") != "result" {
		t.Fatalf("ping: %v", r)
	}
	// The room still works: bob joins, alice speaks, bob hears.
	join(t, bob, "loop", "bob", "")
	bob.Expect(t, "in", presenceFrom(room+"/bob", ""))
	alice.SendRaw(t, `<message type="groupchat" id="m1" to="`+room+`"><body>still here</body></message>`)
	bob.Expect(t, "message", func(el *xmpp.Element) bool { return el.Get("id") == "m1" && el.Get("from") == room+"/alice" })
	// And so does another room.
	create(t, bob, "elsewhere", "bob")
	join(t, alice, "elsewhere", "alice", "")
	alice.Expect(t, "in elsewhere", presenceFrom("elsewhere@"+service+"/alice", ""))
	bob.SendRaw(t, `<message type="groupchat" id="m2" to="elsewhere@`+service+`"><body>hi</body></message>`)
	alice.Expect(t, "message elsewhere", func(el *xmpp.Element) bool { return el.Get("id") == "m2" })

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
