package muc_test

import (
	"context"
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
