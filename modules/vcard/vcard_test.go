package vcard_test

import (
	"context"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/disco"
	"github.com/xmppd/xmppd/modules/vcard"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// maxBytes is the limit the tests run with, small enough to pass with a
// stanza of a few hundred bytes.
const maxBytes = 400

// start runs a server on st with the default modules and the test's limit.
func start(t *testing.T, backend string, st storage.Store) *testenv.Server {
	return testenv.Start(t, backend, func(srv *xmpp.Server) {
		srv.Store = st
		srv.Modules = modules.Default(modules.Options{Store: st, MaxVCardBytes: maxBytes})
	})
}

func online(t *testing.T, s *testenv.Server, local string) *testenv.Client {
	t.Helper()
	return s.Dial(t, s.AddUser(t, local, "pw"), "pw", "r")
}

// card returns the vCard of a result, failing unless it is one.
func card(t *testing.T, res *xmpp.Element) *xmpp.Element {
	t.Helper()
	c := res.Child(vcard.NS, "vCard")
	if res.Get("type") != "result" || c == nil {
		t.Fatalf("want a result with a vCard: %s", res)
	}
	return c
}

func wantError(t *testing.T, res *xmpp.Element, cond xmpp.Condition) {
	t.Helper()
	if res.Get("type") != "error" || testenv.ErrorCondition(res) != cond {
		t.Fatalf("want a %s error: %s", cond, res)
	}
}

const aliceCard = `<vCard xmlns="vcard-temp"><FN>Alice &amp; Co</FN><NICKNAME>al</NICKNAME>` +
	`<PHOTO><TYPE>image/png</TYPE><BINVAL>iVBORw0KGgo=</BINVAL></PHOTO>` +
	`<x xmlns="urn:example:ext" a="1">kept</x></vCard>`

func TestVCard(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		st := testenv.OpenStore(t, backend)
		s := start(t, backend, st)
		a, b := online(t, s, "alice"), online(t, s, "bob")
		alice := a.JID.Bare().String()

		// Nothing set: an empty vCard, to its owner and to others.
		if c := card(t, a.IQ(t, "get", "", `<vCard xmlns="vcard-temp"/>`)); len(c.Children) != 0 {
			t.Fatalf("vCard before any set: %s", c)
		}
		if c := card(t, b.IQ(t, "get", alice, `<vCard xmlns="vcard-temp"/>`)); len(c.Children) != 0 {
			t.Fatalf("alice's vCard to bob before any set: %s", c)
		}

		want, err := xmpp.ParseElement([]byte(aliceCard))
		if err != nil {
			t.Fatal(err)
		}
		if res := a.IQ(t, "set", "", aliceCard); res.Get("type") != "result" {
			t.Fatalf("set: %s", res)
		}
		check := func(t *testing.T, c *testenv.Client, to string) {
			t.Helper()
			got := card(t, c.IQ(t, "get", to, `<vCard xmlns="vcard-temp"/>`))
			if got.String() != want.String() {
				t.Fatalf("vCard = %s\nwant %s", got, want)
			}
		}
		check(t, a, "")
		check(t, a, alice)
		check(t, b, alice) // anyone may read it

		t.Run("another's", func(t *testing.T) {
			wantError(t, b.IQ(t, "set", alice, `<vCard xmlns="vcard-temp"><FN>Mallory</FN></vCard>`), xmpp.Forbidden)
			check(t, a, "")
		})

		t.Run("limit", func(t *testing.T) {
			big := `<vCard xmlns="vcard-temp"><DESC>` + strings.Repeat("x", maxBytes) + `</DESC></vCard>`
			wantError(t, a.IQ(t, "set", "", big), xmpp.NotAcceptable)
			check(t, a, "") // unchanged
		})

		t.Run("disco", func(t *testing.T) {
			res := a.IQ(t, "get", testenv.Domain, `<query xmlns="`+disco.NSInfo+`"/>`)
			q := res.Child(disco.NSInfo, "query")
			found := false
			for _, f := range q.Elements() {
				found = found || (f.Local == "feature" && f.Get("var") == vcard.NS)
			}
			if !found {
				t.Fatalf("server's disco#info lacks %s: %s", vcard.NS, res)
			}
		})

		t.Run("restart", func(t *testing.T) {
			// A server started afresh on the same store has it.
			s2 := testenv.Start(t, backend, func(srv *xmpp.Server) { srv.Store = st })
			c := s2.Dial(t, b.JID, "pw", "again")
			check(t, c, alice)
		})

		t.Run("empty removes", func(t *testing.T) {
			c := online(t, s, "carol")
			carol := c.JID.Bare().String()
			if res := c.IQ(t, "set", "", `<vCard xmlns="vcard-temp"><FN>Carol</FN></vCard>`); res.Get("type") != "result" {
				t.Fatalf("set: %s", res)
			}
			if res := c.IQ(t, "set", "", `<vCard xmlns="vcard-temp"/>`); res.Get("type") != "result" {
				t.Fatalf("empty set: %s", res)
			}
			if _, err := st.XMLDoc(context.Background(), carol, vcard.Key); err == nil {
				t.Fatal("an empty set left a stored vCard")
			}
			if got := card(t, b.IQ(t, "get", carol, `<vCard xmlns="vcard-temp"/>`)); len(got.Children) != 0 {
				t.Fatalf("vCard after an empty set: %s", got)
			}
		})

		t.Run("account deleted", func(t *testing.T) {
			if err := st.DeleteUser(context.Background(), alice); err != nil {
				t.Fatal(err)
			}
			if _, err := st.XMLDoc(context.Background(), alice, vcard.Key); err == nil {
				t.Fatal("DeleteUser left the vCard")
			}
			// Created again, the account starts without one.
			s.AddUser(t, "alice", "pw")
			if got := card(t, b.IQ(t, "get", alice, `<vCard xmlns="vcard-temp"/>`)); len(got.Children) != 0 {
				t.Fatalf("vCard of a new account of the same name: %s", got)
			}
		})
	})
}
