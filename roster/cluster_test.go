package roster_test

import (
	"context"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// When the other nodes of a cluster may have taken this node's sessions
// for gone, each available session's presence goes out again, as it was;
// when a dead node's sessions are reported gone, their contacts here are
// told they are unavailable.
func TestClusterPresenceRepairs(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	subscribeBoth(t, s, aj, bj)
	a, b := online(t, s, aj, "a"), online(t, s, bj, "b")
	a.Expect(t, "bob's presence", isPresence(b.JID.String(), ""))
	b.SendRaw(t, `<presence><status>at work</status></presence>`)
	a.Expect(t, "bob's new status", isPresence(b.JID.String(), ""))

	s.Server.TakenForGone(t.Context())
	p := a.Expect(t, "bob's presence again", isPresence(b.JID.String(), ""))
	if st := p.Child("", "status"); st == nil || st.Text() != "at work" {
		t.Fatalf("bob's presence sent again is not the last one: %s", p)
	}

	// A session of another node (none here has that resource) reported gone.
	s.Server.SessionsGone(t.Context(), map[string][]string{bj.String(): {"elsewhere"}})
	a.Expect(t, "unavailable from bob's resource elsewhere", isPresence(bj.String()+"/elsewhere", "unavailable"))
}

// Another node's changes to a roster arrive over the cluster bus:
// roster-changed drops the cached roster (the next get shows what storage
// holds, with its version), and roster-push also pushes the item to the
// account's interested sessions here, with the version this node computes.
func TestClusterRosterChanges(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	ctx := context.Background()
	aj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "carol", "pw")
	a := online(t, s, aj, "a")
	v0 := a.rosterShows(t, cj.String(), "", "") // now cached
	receive := func(op string) {
		t.Helper()
		if err := s.Server.Receive(ctx, []byte(op)); err != nil {
			t.Fatal(err)
		}
	}

	// Stored by another node, which says so.
	must(t, s.Store.PutRosterItem(ctx, aj.String(), storage.RosterItem{Contact: cj.String(), Subscription: storage.SubNone, PendingIn: true, Name: "Carol"}, 0))
	receive(`<roster-changed xmlns="` + xmpp.NSCluster + `" owner="` + aj.String() + `"/>`)
	v1 := a.rosterShows(t, cj.String(), "none", "")
	if v1 == v0 {
		t.Fatalf("the version did not change with a new item: %s", v1)
	}

	must(t, s.Store.PutRosterItem(ctx, aj.String(), storage.RosterItem{Contact: cj.String(), Subscription: storage.SubFrom, Name: "Carol"}, 0))
	receive(`<roster-push xmlns="` + xmpp.NSCluster + `" owner="` + aj.String() + `">` +
		`<item xmlns="jabber:iq:roster" jid="` + cj.String() + `" name="Carol" subscription="from"/></roster-push>`)
	v2 := a.pushVer(t, "carol's push", isPush(cj.String(), "from", ""))
	a.rosterShows(t, cj.String(), "from", v2)
}
