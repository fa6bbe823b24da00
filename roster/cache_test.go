package roster_test

import (
	"context"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// rosterShows gets u's roster and checks contact's item in it: its
// subscription, or absence when sub is "". It returns the roster's
// version, which must also be the one the last push carried (ver, when
// not empty): a cached roster that missed a change answers with the old
// items and version.
func (u *user) rosterShows(t *testing.T, contact, sub, ver string) string {
	t.Helper()
	q := u.roster(t, "")
	it := item(q, contact)
	switch {
	case sub == "" && it != nil:
		t.Fatalf("%s still in %s's roster: %s", contact, u.bare, q)
	case sub != "" && (it == nil || it.Get("subscription") != sub):
		t.Fatalf("%s's roster, want %s with subscription %s: %s", u.bare, contact, sub, q)
	case ver != "" && q.Get("ver") != ver:
		t.Fatalf("%s's roster has version %s, the last push %s", u.bare, q.Get("ver"), ver)
	}
	return q.Get("ver")
}

// pushVer waits for a push matching match and returns its version.
func (u *user) pushVer(t *testing.T, what string, match func(*xmpp.Element) bool) string {
	t.Helper()
	return u.Expect(t, what, match).Child(xmpp.NSRoster, "query").Get("ver")
}

// TestRosterCacheFollowsChanges: alice stays online, so her roster is
// served from memory, while it is changed by every path there is: her own
// roster set and remove, subscriptions with bob, and team membership
// written through storage (as xmppctl and the app do; psql, sqlite3 and
// xmppctl themselves in TestMembershipBySQL and TestXmppctlGroupPush).
// After each change a roster get shows it, and presence follows it.
func TestRosterCacheFollowsChanges(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		watching(t, s)
		ctx := context.Background()
		aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
		a := online(t, s, aj, "a")
		b := online(t, s, bj, "b")
		v0 := a.rosterShows(t, cj.String(), "", "")

		// Her own set, then remove.
		a.SendRaw(t, `<iq type="set" id="s1"><query xmlns="jabber:iq:roster"><item jid="carol@localhost"/></query></iq>`)
		v1 := a.pushVer(t, "push of carol", isPush(cj.String(), "none", ""))
		if v1 == v0 {
			t.Fatalf("the version did not change with a new item: %s", v1)
		}
		a.rosterShows(t, cj.String(), "none", v1)
		a.SendRaw(t, `<iq type="set" id="s2"><query xmlns="jabber:iq:roster"><item jid="carol@localhost" subscription="remove"/></query></iq>`)
		v2 := a.pushVer(t, "carol removed", isPush(cj.String(), "remove", ""))
		a.rosterShows(t, cj.String(), "", v2)

		// Subscriptions both ways with bob, who is online too.
		a.send(t, bj.String(), "subscribe")
		a.pushVer(t, "ask", isPush(bj.String(), "none", "subscribe"))
		b.Expect(t, "request", isPresence(aj.String(), "subscribe"))
		b.send(t, aj.String(), "subscribed")
		v3 := a.pushVer(t, "bob approved", isPush(bj.String(), "to", ""))
		a.Expect(t, "bob's presence once subscribed", isPresence(b.JID.String(), ""))
		a.rosterShows(t, bj.String(), "to", v3)
		b.send(t, aj.String(), "subscribe")
		a.Expect(t, "bob's request", isPresence(bj.String(), "subscribe"))
		a.send(t, bj.String(), "subscribed")
		v4 := a.pushVer(t, "both", isPush(bj.String(), "both", ""))
		a.rosterShows(t, bj.String(), "both", v4)
		// The cached item decides who gets her presence: bob does now.
		a.SendRaw(t, `<presence><status>now</status></presence>`)
		b.Expect(t, "alice's presence through the cached item", func(el *xmpp.Element) bool {
			st := el.Child(xmpp.NSClient, "status")
			return isPresence(a.JID.String(), "")(el) && st != nil && st.Text() == "now"
		})
		b.send(t, aj.String(), "unsubscribe")
		v5 := a.pushVer(t, "bob unsubscribed", isPush(bj.String(), "to", ""))
		a.rosterShows(t, bj.String(), "to", v5)

		// Team membership, written through storage.
		c := online(t, s, cj, "c")
		must(t, s.Store.CreateGroup(ctx, storage.Group{ID: "t", Kind: storage.KindTeam, Name: "Team"}))
		must(t, s.Store.AddMember(ctx, "t", aj.String()))
		must(t, s.Store.AddMember(ctx, "t", cj.String()))
		v6 := a.pushVer(t, "carol shared", pushGroups(cj.String(), "both", "Team"))
		a.rosterShows(t, cj.String(), "both", v6)
		// A probe alice answers from the cache: carol comes back and sees
		// alice at once.
		c.Close()
		c = login(t, s, cj, "c2")
		c.roster(t, "")
		c.SendRaw(t, `<presence/>`)
		c.expectAll(t, "own presence, and alice's from the probe", isPresence(c.JID.String(), ""), isPresence(a.JID.String(), ""))
		must(t, s.Store.RemoveMember(ctx, "t", cj.String()))
		v7 := a.pushVer(t, "carol no longer shared", isPush(cj.String(), "remove", ""))
		a.rosterShows(t, cj.String(), "", v7)
	})
}

// TestTeamRosterVersion: a team member who comes back with the version
// it had gets an empty result (RFC 6121 §2.6.3), since the version is
// computed from the roster, not from the session or the shared set it
// came from; after a membership change, the version it had is stale and
// the whole roster comes (issue 22, item 3).
func TestTeamRosterVersion(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		watching(t, s)
		ctx := context.Background()
		team := newTeam(t, s, 5)
		other := online(t, s, team[1], "o") // keeps the shared set in use
		u := login(t, s, team[0], "a")
		q := u.roster(t, "")
		ver := q.Get("ver")
		if len(q.Elements()) != 4 || ver == "" {
			t.Fatalf("first roster: %s", q)
		}
		u.Close()
		u = login(t, s, team[0], "b")
		if q := u.roster(t, ver); q != nil {
			t.Fatalf("coming back with the current version: want an empty result, got %s", q)
		}
		newcomer := s.AddUser(t, "m5", "pw")
		must(t, s.Store.AddMember(ctx, "t", newcomer.String()))
		other.Expect(t, "the newcomer pushed", pushGroups(newcomer.String(), "both", "Team"))
		u.Close()
		u = login(t, s, team[0], "c")
		q = u.roster(t, ver)
		if q == nil || len(q.Elements()) != 5 || q.Get("ver") == ver {
			t.Fatalf("after a change, with the old version: want the whole roster of 5 and a new version, got %v", q)
		}
	})
}
