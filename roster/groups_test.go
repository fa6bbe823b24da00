package roster_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/sqlite"
	"github.com/xmppd/xmppd/xmpp"
)

// watching waits until the roster module of s watches group changes, so
// that a change made next is seen.
func watching(t *testing.T, s *testenv.Server) {
	t.Helper()
	for _, m := range s.Modules {
		if r, ok := m.(*roster.Module); ok {
			select {
			case <-r.Watching():
				return
			case <-t.Context().Done():
			}
		}
	}
}

func pushGroups(contact, sub, want string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		if !isPush(contact, sub, "")(el) {
			return false
		}
		return groups(el.Child(xmpp.NSRoster, "query").Child(xmpp.NSRoster, "item")) == want
	}
}

func TestSharedGroups(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		watching(t, s)
		ctx := context.Background()
		aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
		must(t, s.Store.CreateGroup(ctx, storage.Group{ID: "t1", Kind: storage.KindTeam, Name: "Design"}))
		must(t, s.Store.CreateGroup(ctx, storage.Group{ID: "p1", Kind: storage.KindProject, Name: "Launch", Parent: "t1"}))
		must(t, s.Store.AddMember(ctx, "t1", aj.String()))
		must(t, s.Store.AddMember(ctx, "t1", bj.String()))
		must(t, s.Store.AddMember(ctx, "p1", bj.String()))

		a := online(t, s, aj, "a")
		q := a.roster(t, "")
		it := item(q, bj.String())
		if it == nil || it.Get("subscription") != "both" || groups(it) != "Design" {
			t.Fatalf("bob in alice's roster: %s", q)
		}
		b := online(t, s, bj, "b")
		a.Expect(t, "bob's presence without any subscription request", isPresence(b.JID.String(), ""))
		b.Expect(t, "alice's presence from the probe", isPresence(a.JID.String(), ""))

		// Clients cannot remove a co-member, and are told why.
		el := a.iq(t, "set", `<query xmlns="jabber:iq:roster"><item jid="`+bj.String()+`" subscription="remove"/></query>`)
		if e := el.Child("", "error"); e == nil || e.Child("", "not-allowed") == nil || !strings.Contains(e.Child("", "text").Text(), "Design") {
			t.Fatalf("removing a co-member: %s", el)
		}
		// They may name them and add groups of their own.
		a.SendRaw(t, `<iq type="set" id="name1"><query xmlns="jabber:iq:roster"><item jid="`+bj.String()+`" name="Bobby"><group>Friends</group></item></query></iq>`)
		a.expectAll(t, "result and push with both groups", isResult("name1"), pushGroups(bj.String(), "both", "Design,Friends"))

		// carol joins the project while everyone is online.
		c := online(t, s, cj, "c")
		must(t, s.Store.AddMember(ctx, "p1", cj.String()))
		b.expectAll(t, "push for carol and her presence", pushGroups(cj.String(), "both", "Launch"), isPresence(c.JID.String(), ""))
		c.expectAll(t, "push for bob and his presence", pushGroups(bj.String(), "both", "Launch"), isPresence(b.JID.String(), ""))
		a.quiet(t, "alice shares nothing with carol", func(el *xmpp.Element) bool {
			return strings.Contains(el.String(), cj.String())
		})

		// carol leaves: the item goes and her presence with it.
		must(t, s.Store.RemoveMember(ctx, "p1", cj.String()))
		b.expectAll(t, "carol removed", isPush(cj.String(), "remove", ""), isPresence(c.JID.String(), "unavailable"))
		c.expectAll(t, "bob removed", isPush(bj.String(), "remove", ""), isPresence(b.JID.String(), "unavailable"))
	})
}

// newTeam creates the team "t" (named Team) with n new accounts m0, m1…
// as its members, and returns them.
func newTeam(t *testing.T, s *testenv.Server, n int) []jid.JID {
	t.Helper()
	ctx := context.Background()
	must(t, s.Store.CreateGroup(ctx, storage.Group{ID: "t", Kind: storage.KindTeam, Name: "Team"}))
	team := make([]jid.JID, n)
	for i := range n {
		team[i] = s.AddUser(t, fmt.Sprintf("m%d", i), "pw")
		must(t, s.Store.AddMember(ctx, "t", team[i].String()))
	}
	return team
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestMembershipBySQL changes membership the way the app would: plain SQL
// from another program (psql on Postgres, sqlite3 on the embedded
// database), with two members online. Each change reaches the members'
// cached rosters: a roster get shows it with the version of its push.
func TestMembershipBySQL(t *testing.T) {
	for _, backend := range testenv.Backends {
		t.Run(backend, func(t *testing.T) {
			store, sql := sqlStore(t, backend)
			s := testenv.Start(t, backend, func(srv *xmpp.Server) {
				srv.Store = store
				srv.Modules = modules.Default(modules.Options{Store: store})
			})
			watching(t, s)
			aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
			sql(`INSERT INTO groups (id, kind, name) VALUES ('eng', 'team', 'Engineering')`)
			a, b := online(t, s, aj, "a"), online(t, s, bj, "b")

			sql(`INSERT INTO group_members (group_id, jid) VALUES ('eng', 'alice@localhost'), ('eng', 'bob@localhost')`)
			a.expectAll(t, "bob pushed and present", pushGroups(bj.String(), "both", "Engineering"), isPresence(b.JID.String(), ""))
			b.expectAll(t, "alice pushed and present", pushGroups(aj.String(), "both", "Engineering"), isPresence(a.JID.String(), ""))
			a.rosterShows(t, bj.String(), "both", "")

			// A rename is pushed too.
			sql(`UPDATE groups SET name = 'R&D' WHERE id = 'eng'`)
			ver := a.pushVer(t, "renamed group", pushGroups(bj.String(), "both", "R&D"))
			b.Expect(t, "renamed group", pushGroups(aj.String(), "both", "R&D"))
			if q := a.roster(t, ""); q.Get("ver") != ver || groups(item(q, bj.String())) != "R&D" {
				t.Fatalf("alice's roster after the rename (push version %s): %s", ver, q)
			}

			sql(`DELETE FROM group_members WHERE group_id = 'eng' AND jid = 'bob@localhost'`)
			a.expectAll(t, "bob removed and gone", isPush(bj.String(), "remove", ""), isPresence(b.JID.String(), "unavailable"))
			b.expectAll(t, "alice removed and gone", isPush(aj.String(), "remove", ""), isPresence(a.JID.String(), "unavailable"))
			a.rosterShows(t, bj.String(), "", "")
			b.rosterShows(t, aj.String(), "", "")
		})
	}
}

// sqlStore opens a store of backend that the test can also reach with the
// backend's own command-line client, and returns a function running SQL
// there as another program would.
func sqlStore(t *testing.T, backend string) (storage.Store, func(string)) {
	t.Helper()
	client := map[string]string{"postgres": "psql", "sqlite": "sqlite3"}[backend]
	bin, err := exec.LookPath(client)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing: scripts/test-deps.sh installs it", client)
		}
		t.Skipf("%s is missing; run scripts/test-deps.sh", client)
	}
	ctx := context.Background()
	var (
		store storage.Store
		cmd   func(q string) *exec.Cmd
	)
	switch backend {
	case "postgres":
		dsn := pgtest.DSN(t)
		store, err = postgres.Open(ctx, dsn)
		u, perr := url.Parse(dsn)
		if perr != nil {
			t.Fatal(perr)
		}
		qs := u.Query()
		schema := qs.Get("search_path")
		qs.Del("search_path")
		u.RawQuery = qs.Encode()
		cmd = func(q string) *exec.Cmd {
			c := exec.Command(bin, "-v", "ON_ERROR_STOP=1", "-Atq", u.String(), "-c", q)
			c.Env = append(os.Environ(), "PGOPTIONS=-csearch_path="+schema)
			return c
		}
	case "sqlite":
		path := t.TempDir() + "/xmppd.db"
		store, err = sqlite.Open(ctx, path)
		cmd = func(q string) *exec.Cmd {
			// As an app would: wait for xmppd's own writes, enforce the
			// foreign keys.
			return exec.Command(bin, "-bail", "-cmd", ".timeout 5000", "-cmd", "PRAGMA foreign_keys = ON", path, q)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store, func(q string) {
		t.Helper()
		if out, err := cmd(q).CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", client, q, err, out)
		}
	}
}

// TestMembershipChurn: with a team of 12 online, 500 more people join it
// one at a time and then leave, and a last one joins: 1,001 changes within
// a few seconds, faster than the 1,000 a minute of issue 22. Every member online
// ends with the right roster, having had at most one push when each came
// and one when each went (a watch may coalesce changes, and then the
// member sees only their net effect), and no other: a change costs each
// member one push, not a resync of the team (issue 22, item 5).
func TestMembershipChurn(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		watching(t, s)
		ctx := context.Background()
		const online, churn = 12, 500
		var team []*user
		for _, j := range newTeam(t, s, online) {
			team = append(team, onlineAs(t, s, j.String()))
		}
		var extra []string
		for i := range churn {
			extra = append(extra, fmt.Sprintf("x%d@localhost", i))
		}
		for _, x := range extra {
			must(t, s.Store.AddMember(ctx, "t", x))
		}
		for _, x := range extra {
			must(t, s.Store.RemoveMember(ctx, "t", x))
		}
		const last = "zz@localhost"
		must(t, s.Store.AddMember(ctx, "t", last))
		pushes := 0
		for _, u := range team {
			// Pushes come until the member's view is the final one: last
			// in, every other gone. Not just until the push for the last
			// change: a change handled late reads storage as it is by then,
			// and pushes what came before what went.
			got := map[string][]string{}
			settled := func() bool {
				if subs := got[last]; len(subs) == 0 || subs[len(subs)-1] != "both" {
					return false
				}
				for c, subs := range got {
					if c != last && subs[len(subs)-1] != "remove" {
						return false
					}
				}
				return true
			}
			u.Expect(t, "the pushes that make the final roster", func(el *xmpp.Element) bool {
				if el.Local != "iq" || el.Get("type") != "set" {
					return false
				}
				it := el.Child(xmpp.NSRoster, "query").Child(xmpp.NSRoster, "item")
				got[it.Get("jid")] = append(got[it.Get("jid")], it.Get("subscription"))
				return settled()
			})
			for c, subs := range got {
				want := "both,remove"
				if c == last {
					want = "both"
				}
				if s := strings.Join(subs, ","); s != want {
					t.Fatalf("%s got pushes %q for %s, want %q", u.bare, s, c, want)
				}
				pushes++
			}
			u.quiet(t, "no push after the last change", func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("type") == "set" })
			q := u.roster(t, "")
			if n := len(q.Elements()); n != online {
				t.Fatalf("%s's roster has %d items, want the %d others and %s: %s", u.bare, n, online-1, last, q)
			}
		}
		t.Logf("%s: %d contacts pushed to %d members (each change seen separately: %d)", backend, pushes, online, online*(churn+1))
	})
}

// onlineAs is online for an account given by its bare JID string.
func onlineAs(t *testing.T, s *testenv.Server, bare string) *user {
	t.Helper()
	return online(t, s, jid.MustParse(bare), "r")
}

// TestSharedSetsSplit: alice, bob and carol are one team, so they share
// one set of co-members; alice is also alone in a project, which adds no
// one to it. When dave joins that project, the change concerns alice alone
// of the three, whichever of them the set's update starts from: alice gets
// dave, bob and carol do not; and when he leaves, alice loses him again.
func TestSharedSetsSplit(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		watching(t, s)
		ctx := context.Background()
		team := newTeam(t, s, 3)
		aj, bj, cj, dj := team[0], team[1], team[2], s.AddUser(t, "dave", "pw")
		must(t, s.Store.CreateGroup(ctx, storage.Group{ID: "p", Kind: storage.KindProject, Name: "Solo", Parent: "t"}))
		must(t, s.Store.AddMember(ctx, "p", aj.String()))
		a, b, c := online(t, s, aj, "a"), online(t, s, bj, "b"), online(t, s, cj, "c")
		for _, u := range []*user{a, b, c} {
			if n := len(u.roster(t, "").Elements()); n != 2 {
				t.Fatalf("%s has %d co-members, want 2", u.bare, n)
			}
		}

		must(t, s.Store.AddMember(ctx, "p", dj.String()))
		a.Expect(t, "dave in the project", pushGroups(dj.String(), "both", "Solo"))
		for _, u := range []*user{b, c} {
			u.quiet(t, "dave shares nothing with "+u.bare, func(el *xmpp.Element) bool {
				return strings.Contains(el.String(), dj.String())
			})
			u.rosterShows(t, dj.String(), "", "")
		}
		a.rosterShows(t, dj.String(), "both", "")

		must(t, s.Store.RemoveMember(ctx, "p", dj.String()))
		a.Expect(t, "dave gone", isPush(dj.String(), "remove", ""))
		a.rosterShows(t, dj.String(), "", "")
		// bob and carol still see each other and alice.
		b.rosterShows(t, cj.String(), "both", "")
		b.rosterShows(t, aj.String(), "both", "")
	})
}

// TestTeamPresenceOverWeb: broadcasts to a team's members are spliced
// from bytes serialised once (Router.DeliverFanoutEach), and so are
// written without going through the router: a member on TCP, one over
// WebSocket (RFC 7395: each element declares jabber:client) and one over
// BOSH see each other's initial presence and a later update.
func TestTeamPresenceOverWeb(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		team := newTeam(t, s, 3)
		aj, bj, cj := team[0], team[1], team[2]
		a := online(t, s, aj, "tcp")
		ws := &user{Client: s.DialWebSocket(t, bj, "pw", "ws"), bare: bj.String()}
		ws.roster(t, "")
		ws.SendRaw(t, `<presence/>`)
		ws.expectAll(t, "own presence and alice's, in jabber:client", isPresence(ws.JID.String(), ""), func(el *xmpp.Element) bool {
			return isPresence(a.JID.String(), "")(el) && el.Space == xmpp.NSClient
		})
		a.Expect(t, "bob's presence from the broadcast", isPresence(ws.JID.String(), ""))

		b := s.NewBOSH()
		bosh := b.Login(t, cj, "pw", "bosh")
		b.Post(t, "", `<iq xmlns="jabber:client" type="get" id="r"><query xmlns="jabber:iq:roster"/></iq><presence xmlns="jabber:client"/>`)
		seen := map[string]bool{}
		b.Until(t, "alice's and bob's presence over BOSH", func(el *xmpp.Element) bool {
			if el.Local == "presence" && el.Get("type") == "" {
				seen[el.Get("from")] = true
			}
			return seen[a.JID.String()] && seen[ws.JID.String()]
		})
		a.Expect(t, "carol's presence from the broadcast", isPresence(bosh.String(), ""))
		ws.Expect(t, "carol's presence from the broadcast, in jabber:client", func(el *xmpp.Element) bool {
			return isPresence(bosh.String(), "")(el) && el.Space == xmpp.NSClient
		})

		// An update, spliced once for both web members.
		a.SendRaw(t, `<presence><status>lunch</status></presence>`)
		isLunch := func(el *xmpp.Element) bool {
			st := el.Child(xmpp.NSClient, "status")
			return isPresence(a.JID.String(), "")(el) && st != nil && st.Text() == "lunch"
		}
		ws.Expect(t, "alice's update over WebSocket", isLunch)
		b.Until(t, "alice's update over BOSH", func(el *xmpp.Element) bool {
			st := el.Child("", "status")
			return isPresence(a.JID.String(), "")(el) && st != nil && st.Text() == "lunch" && el.Get("to") == bosh.String()
		})
	})
}
