package private_test

import (
	"context"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/private"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

const maxBytes, maxElements = 400, 3

func start(t *testing.T, backend string, st storage.Store) *testenv.Server {
	return testenv.Start(t, backend, func(srv *xmpp.Server) {
		srv.Store = st
		srv.Modules = modules.Default(modules.Options{Store: st, MaxPrivateBytes: maxBytes, MaxPrivateElements: maxElements})
	})
}

func query(inner string) string { return `<query xmlns="` + private.NS + `">` + inner + `</query>` }

// stored asks c's storage for the element named space and local and
// returns what the query holds.
func stored(t *testing.T, c *testenv.Client, space, local string) *xmpp.Element {
	t.Helper()
	res := c.IQ(t, "get", "", query(`<`+local+` xmlns="`+space+`"/>`))
	q := res.Child(private.NS, "query")
	if res.Get("type") != "result" || q == nil || len(q.Elements()) != 1 {
		t.Fatalf("get %s: %s", private.Key(space, local), res)
	}
	el := q.Elements()[0]
	if el.Space != space || el.Local != local {
		t.Fatalf("get %s returned %s", private.Key(space, local), el)
	}
	return el
}

func wantError(t *testing.T, res *xmpp.Element, cond xmpp.Condition) {
	t.Helper()
	if res.Get("type") != "error" || testenv.ErrorCondition(res) != cond {
		t.Fatalf("want a %s error: %s", cond, res)
	}
}

// bookmarks are XEP-0048's, as old clients keep them, with a namespaced
// attribute and a foreign child that must come back as they went.
const bookmarks = `<storage xmlns="storage:bookmarks">` +
	`<conference jid="room@conference.localhost" autojoin="true" name="R &amp; D">` +
	`<nick>al</nick><password>s&lt;cret</password></conference>` +
	`<url name="home" url="https://example.com/?a=1&amp;b=2"/>` +
	`<x xmlns="urn:example:ext" xml:lang="en">text</x></storage>`

func TestPrivate(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		st := testenv.OpenStore(t, backend)
		s := start(t, backend, st)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		a, b := s.Dial(t, aj, "pw", "r"), s.Dial(t, bj, "pw", "r")
		alice := aj.String()

		// Nothing stored: the requested element, empty.
		if el := stored(t, a, "storage:bookmarks", "storage"); len(el.Children) != 0 {
			t.Fatalf("bookmarks before any set: %s", el)
		}

		want, err := xmpp.ParseElement([]byte(bookmarks))
		if err != nil {
			t.Fatal(err)
		}
		if res := a.IQ(t, "set", "", query(bookmarks)); res.Get("type") != "result" {
			t.Fatalf("set: %s", res)
		}
		other := `<prefs xmlns="urn:example:prefs"><theme>dark</theme></prefs>`
		if res := a.IQ(t, "set", alice, query(other)); res.Get("type") != "result" {
			t.Fatalf("set (to the bare JID): %s", res)
		}
		check := func(t *testing.T, c *testenv.Client) {
			t.Helper()
			if got := stored(t, c, "storage:bookmarks", "storage"); got.String() != want.String() {
				t.Fatalf("bookmarks = %s\nwant %s", got, want)
			}
			if got := stored(t, c, "urn:example:prefs", "prefs"); got.Child("urn:example:prefs", "theme").Text() != "dark" {
				t.Fatalf("prefs = %s", got)
			}
		}
		check(t, a)
		// Same namespace, another name: a separate element.
		if el := stored(t, a, "storage:bookmarks", "other"); len(el.Children) != 0 {
			t.Fatalf("another name of the same namespace: %s", el)
		}
		// Bob's storage is his own.
		if el := stored(t, b, "storage:bookmarks", "storage"); len(el.Children) != 0 {
			t.Fatalf("bob sees bookmarks: %s", el)
		}

		t.Run("errors", func(t *testing.T) {
			for _, tc := range []struct {
				name, typ, to, payload string
				cond                   xmpp.Condition
			}{
				{"get another's", "get", alice, query(`<storage xmlns="storage:bookmarks"/>`), xmpp.Forbidden},
				{"set another's", "set", alice, query(`<storage xmlns="storage:bookmarks"/>`), xmpp.Forbidden},
				{"no element", "get", "", query(``), xmpp.BadRequest},
				{"two elements", "set", "", query(`<a xmlns="urn:a"/><b xmlns="urn:b"/>`), xmpp.BadRequest},
				{"query's namespace", "set", "", query(`<storage/>`), xmpp.NotAcceptable},
				{"jabber:client", "get", "", query(`<storage xmlns="jabber:client"/>`), xmpp.NotAcceptable},
				{"jabber:server", "set", "", query(`<storage xmlns="jabber:server"/>`), xmpp.NotAcceptable},
				{"empty namespace", "set", "", query(`<storage xmlns=""/>`), xmpp.NotAcceptable},
				{"too big", "set", "", query(`<big xmlns="urn:big">` + strings.Repeat("x", maxBytes) + `</big>`), xmpp.NotAcceptable},
			} {
				t.Run(tc.name, func(t *testing.T) {
					wantError(t, b.IQ(t, tc.typ, tc.to, tc.payload), tc.cond)
				})
			}
			check(t, a) // nothing changed
			if el := stored(t, b, "urn:big", "big"); len(el.Children) != 0 {
				t.Fatalf("the refused element was stored: %s", el)
			}
		})

		t.Run("replace", func(t *testing.T) {
			if res := b.IQ(t, "set", "", query(`<prefs xmlns="urn:example:prefs"><theme>light</theme></prefs>`)); res.Get("type") != "result" {
				t.Fatalf("set: %s", res)
			}
			if res := b.IQ(t, "set", "", query(`<prefs xmlns="urn:example:prefs"><theme>blue</theme></prefs>`)); res.Get("type") != "result" {
				t.Fatalf("set: %s", res)
			}
			if got := stored(t, b, "urn:example:prefs", "prefs"); len(got.Elements()) != 1 || got.Elements()[0].Text() != "blue" {
				t.Fatalf("after a second set: %s", got)
			}
		})

		t.Run("count", func(t *testing.T) {
			// Alice holds two elements; a third fits, a fourth does not.
			if res := a.IQ(t, "set", "", query(`<third xmlns="urn:example:n"/>`)); res.Get("type") != "result" {
				t.Fatalf("set of the third element: %s", res)
			}
			wantError(t, a.IQ(t, "set", "", query(`<fourth xmlns="urn:example:n">x</fourth>`)), xmpp.PolicyViolationCond)
			if el := stored(t, a, "urn:example:n", "fourth"); len(el.Children) != 0 {
				t.Fatalf("the refused element was stored: %s", el)
			}
			// Replacing one at the limit works.
			if res := a.IQ(t, "set", "", query(`<third xmlns="urn:example:n">again</third>`)); res.Get("type") != "result" {
				t.Fatalf("replace at the limit: %s", res)
			}
			if el := stored(t, a, "urn:example:n", "third"); el.Text() != "again" {
				t.Fatalf("replaced element: %s", el)
			}
		})

		t.Run("restart", func(t *testing.T) {
			s2 := testenv.Start(t, backend, func(srv *xmpp.Server) { srv.Store = st })
			check(t, s2.Dial(t, aj, "pw", "again"))
		})

		t.Run("account deleted", func(t *testing.T) {
			if err := st.DeleteUser(context.Background(), alice); err != nil {
				t.Fatal(err)
			}
			s.AddUser(t, "alice", "pw")
			c := s.Dial(t, aj, "pw", "new")
			if el := stored(t, c, "storage:bookmarks", "storage"); len(el.Children) != 0 {
				t.Fatalf("bookmarks after DeleteUser: %s", el)
			}
			if el := stored(t, c, "urn:example:prefs", "prefs"); len(el.Children) != 0 {
				t.Fatalf("prefs after DeleteUser: %s", el)
			}
		})
	})
}
