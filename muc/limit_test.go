package muc_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// TestMaxRoomsPerOwner: with muc.max_rooms_per_owner at 2, an account that
// owns two rooms may not create a third (not-allowed, XEP-0045 §10.1.1,
// with a text that says why) until it destroys one; other accounts are
// not affected, ownership given counts for the new owner, a room made in
// storage by an administrator is served whatever its owner owns, and the
// count comes back from storage after a restart. On both backends.
func TestMaxRoomsPerOwner(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		store := testenv.OpenStore(t, backend)
		startLimited := func() *testenv.Server {
			return testenv.Start(t, backend, func(s *xmpp.Server) {
				s.Store = store
				s.Modules = modules.Default(modules.Options{Store: store, MUC: true, MUCMaxRoomsPerOwner: 2})
			})
		}
		refused := func(c *testenv.Client, name string) {
			t.Helper()
			join(t, c, name, "me", "")
			e := c.Expect(t, "refusal of "+name, presenceFrom(name+"@"+service+"/me", "error"))
			if errorCondition(e) != "not-allowed" || !strings.Contains(e.String(), "max_rooms_per_owner") {
				t.Fatalf("creating %s beyond the limit: %v", name, e)
			}
		}
		s := startLimited()
		alice, bob := user(t, s, "alice"), user(t, s, "bob")
		create(t, alice, "r1", "alice")
		configure(t, alice, "r1@"+service, "p", "muc#roomconfig_persistentroom", "1")
		create(t, alice, "r2", "alice")
		refused(alice, "r3")
		create(t, bob, "b1", "bob")

		// Destroying a room gives its place back.
		alice.SendRaw(t, `<iq type="set" id="d" to="r2@`+service+`"><query xmlns="`+muc.NSOwner+`"><destroy/></query></iq>`)
		alice.Expect(t, "destroyed", iqResult("d"))
		create(t, alice, "r3", "alice")
		refused(alice, "r4")

		// Ownership given counts for the new owner: bob owns b1 and r1.
		alice.SendRaw(t, `<iq type="set" id="o" to="r1@`+service+`"><query xmlns="`+muc.NSAdmin+`"><item affiliation="owner" jid="`+bob.JID.Bare().String()+`"/></query></iq>`)
		if r := alice.Expect(t, "owner granted", iqResult("o")); r.Get("type") != "result" {
			t.Fatalf("granting ownership: %v", r)
		}
		refused(bob, "b2")

		// A room an administrator made in storage is served although
		// alice owns two already.
		ctx := context.Background()
		team := "team@" + service
		if err := store.SaveRoom(ctx, storage.Room{JID: team, Config: muc.GroupConfig("Team")}); err != nil {
			t.Fatal(err)
		}
		if err := store.SetAffiliation(ctx, team, storage.Affiliation{JID: alice.JID.Bare().String(), Affiliation: storage.AffOwner}); err != nil {
			t.Fatal(err)
		}
		join(t, alice, "team", "alice", "")
		alice.Expect(t, "in the team", presenceFrom(team+"/alice", ""))

		// After a restart, what is stored counts: alice owns r1 and the
		// team, bob r1 only (b1 was temporary).
		shut, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := s.Shutdown(shut); err != nil {
			t.Fatal(err)
		}
		s2 := startLimited()
		alice2 := s2.Dial(t, alice.JID.Bare(), "pw", "r2")
		bob2 := s2.Dial(t, bob.JID.Bare(), "pw", "r2")
		refused(alice2, "r5")
		create(t, bob2, "b2", "bob")
		refused(bob2, "b3")
	})
}

// TestMaxRoomsPerSession: a session may be in MaxRoomsPerSession rooms at
// once (3 here), whether or not it sent its initial presence (the directed
// presence limit bounds only one that did: issue 21 found a session
// without presence joining every room it could name); one more, asked for
// all at once, is refused with <policy-violation/> whether the room exists
// or not, presence to a room it is in still works, leaving one frees its
// place, and another session of the account has its own.
func TestMaxRoomsPerSession(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.Modules = modules.Default(modules.Options{Store: s.Store, MUC: true, MUCMaxRoomsPerSession: 3})
	})
	owner := user(t, s, "owner")
	owner2 := s.Dial(t, owner.JID.Bare(), "pw", "r2") // the owner's sessions are bound too
	for i, r := range []string{"a", "b", "c", "d", "e"} {
		create(t, []*testenv.Client{owner, owner2}[i/3], r, "owner")
	}
	lurker := s.Dial(t, s.AddUser(t, "lurker", "pw"), "pw", "one") // no initial presence
	for _, r := range []string{"a", "b", "c", "d", "new"} {        // at once
		join(t, lurker, r, "lurker", "")
	}
	in, refused := 0, 0
	for range 5 {
		el := lurker.Expect(t, "an answer to a join", func(el *xmpp.Element) bool {
			return el.Local == "presence" && strings.HasSuffix(el.Get("from"), "/lurker") &&
				(el.Get("type") == "error" || slices.Contains(codes(el), "110"))
		})
		switch {
		case el.Get("type") != "error":
			in++
		case errorCondition(el) == "policy-violation" && strings.Contains(el.String(), "leave one first"):
			refused++
		default:
			t.Fatalf("join answered %v", el)
		}
	}
	if in != 3 || refused != 2 {
		t.Fatalf("%d rooms joined and %d refused, want 3 and 2", in, refused)
	}
	// A presence update to a room it is in is no new room.
	lurker.SendRaw(t, `<presence to="a@`+service+`/lurker"><show>away</show></presence>`)
	lurker.Expect(t, "the update", func(el *xmpp.Element) bool {
		if el.Get("type") == "error" {
			t.Fatalf("update refused: %v", el)
		}
		return el.Local == "presence" && el.Get("from") == "a@"+service+"/lurker"
	})
	// Another session of the account is not counted with this one.
	other := s.Dial(t, lurker.JID.Bare(), "pw", "two")
	join(t, other, "e", "lurker2", "")
	other.Expect(t, "in e", presenceFrom("e@"+service+"/lurker2", ""))
	// Leaving frees a place; the room that was never made was not left
	// behind either (the owner may still create it).
	lurker.SendRaw(t, `<presence type="unavailable" to="a@`+service+`/lurker"/>`)
	lurker.Expect(t, "out of a", presenceFrom("a@"+service+"/lurker", "unavailable"))
	join(t, lurker, "d", "lurker", "")
	lurker.Expect(t, "in d", presenceFrom("d@"+service+"/lurker", ""))
	create(t, owner2, "new", "owner")
}
