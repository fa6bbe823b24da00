package roster_test

import (
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/xmpp"
)

// startDirected starts a server whose sessions may send directed presence to
// max entities, and returns it with its roster module.
func startDirected(t *testing.T, backend string, max int) (*testenv.Server, *roster.Module) {
	t.Helper()
	var rm *roster.Module
	s := testenv.Start(t, backend, func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, MaxDirectedPresences: max})
		for _, m := range srv.Modules {
			if r, ok := m.(*roster.Module); ok {
				rm = r
			}
		}
	})
	if rm == nil {
		t.Fatal("no roster module among the default modules")
	}
	return s, rm
}

// directedCount is how many entities the session of full is tracked as
// owing unavailable presence.
func directedCount(t *testing.T, s *testenv.Server, rm *roster.Module, full jid.JID) int {
	t.Helper()
	sess := s.SessionOf(full)
	if sess == nil {
		t.Fatalf("no session %s", full)
	}
	return rm.DirectedPresences(sess)
}

func isPolicyViolation(id string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		if el.Get("id") != id {
			return false
		}
		e := el.Child("", "error")
		return el.Get("type") == "error" && e != nil && e.Child(xmpp.NSStanzas, "policy-violation") != nil
	}
}

// TestDirectedPresenceLimit: a session that has sent directed presence to
// the limit of entities gets <policy-violation/> for a further one, which
// receives nothing; updates to entities already counted still go; directed
// unavailable frees a place; and when the session goes unavailable, exactly
// the entities tracked hear of it.
func TestDirectedPresenceLimit(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		const max, over = 3, 2
		s, rm := startDirected(t, backend, max)
		a := online(t, s, s.AddUser(t, "alice", "pw"), "a")
		var cs []*user
		for i := range max + over {
			cs = append(cs, online(t, s, s.AddUser(t, fmt.Sprintf("c%d", i), "pw"), "r"))
		}
		from := a.JID.String()
		for i, c := range cs {
			a.SendRaw(t, fmt.Sprintf(`<presence id="d%d" to="%s"><status>hi</status></presence>`, i, c.bare))
		}
		for i := max; i < max+over; i++ {
			el := a.Expect(t, fmt.Sprintf("error for directed presence %d", i), func(el *xmpp.Element) bool { return el.Get("id") == fmt.Sprintf("d%d", i) })
			if !isPolicyViolation(el.Get("id"))(el) {
				t.Fatalf("directed presence %d past the limit: got %s, want a policy-violation error", i, el)
			}
			if txt := el.Child("", "error").Child(xmpp.NSStanzas, "text"); txt == nil || !strings.Contains(txt.Text(), "3") {
				t.Errorf("error without a text giving the limit: %s", el)
			}
		}
		for _, c := range cs[:max] {
			c.Expect(t, "directed presence within the limit", isPresence(from, ""))
		}
		for _, c := range cs[max:] {
			c.quiet(t, "directed presence past the limit", isPresence(from, ""))
		}
		if n := directedCount(t, s, rm, a.JID); n != max {
			t.Errorf("%d directed presences tracked, want %d", n, max)
		}

		// An update to an entity already counted is no new entity.
		a.SendRaw(t, `<presence id="again" to="`+cs[0].bare+`"><show>away</show></presence>`)
		cs[0].Expect(t, "updated directed presence", isPresence(from, ""))
		a.quiet(t, "error for an update", func(el *xmpp.Element) bool { return el.Get("id") == "again" })

		// Directed unavailable frees a place, which c3 then takes.
		a.SendRaw(t, `<presence type="unavailable" to="`+cs[0].bare+`"/>`)
		cs[0].Expect(t, "directed unavailable", isPresence(from, "unavailable"))
		a.SendRaw(t, `<presence id="d3b" to="`+cs[3].bare+`"/>`)
		cs[3].Expect(t, "directed presence after a place was freed", isPresence(from, ""))
		a.quiet(t, "error after a place was freed", func(el *xmpp.Element) bool { return el.Get("id") == "d3b" })
		if n := directedCount(t, s, rm, a.JID); n != max {
			t.Errorf("%d directed presences tracked after one left and one came, want %d", n, max)
		}

		// Unavailable goes to exactly the entities tracked: c1, c2, c3.
		a.SendRaw(t, `<presence type="unavailable"/>`)
		for _, c := range []*user{cs[1], cs[2], cs[3]} {
			c.Expect(t, "unavailable to a tracked entity", isPresence(from, "unavailable"))
		}
		for _, c := range []*user{cs[0], cs[4]} {
			c.quiet(t, "unavailable to an entity not tracked", isPresence(from, "unavailable"))
		}
		if n := directedCount(t, s, rm, a.JID); n != 0 {
			t.Errorf("%d directed presences tracked after unavailable, want none", n)
		}
	})
}

// TestDirectedPresenceFlood is the case of issue 15: one session sends
// directed presence to 3,000 entities. With the default limit the server
// tracks 100 and refuses the rest, each with an error, and the session and
// the server go on.
func TestDirectedPresenceFlood(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s, rm := startDirected(t, backend, 0)
		a := online(t, s, s.AddUser(t, "alice", "pw"), "a")
		const total, chunk = 3000, 100
		refused := 0
		for start := 0; start < total; start += chunk {
			var b strings.Builder
			for i := start; i < start+chunk; i++ {
				// Accounts that do not exist: presence to them is dropped
				// (RFC 6121 §8.5.1), tracking is the same.
				fmt.Fprintf(&b, `<presence id="f%d" to="ghost%d@localhost"/>`, i, i)
			}
			a.SendRaw(t, b.String())
			// A barrier: the ping is answered after every presence before it.
			id := nextID()
			a.SendRaw(t, `<iq type="get" id="`+id+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
			a.Expect(t, "ping after presences", func(el *xmpp.Element) bool {
				if el.Local == "presence" && el.Get("type") == "error" {
					if !isPolicyViolation(el.Get("id"))(el) {
						t.Fatalf("unexpected error: %s", el)
					}
					refused++
				}
				return el.Get("id") == id
			})
		}
		if want := total - roster.DefaultMaxDirected; refused != want {
			t.Errorf("%d directed presences refused, want %d", refused, want)
		}
		if n := directedCount(t, s, rm, a.JID); n != roster.DefaultMaxDirected {
			t.Errorf("%d directed presences tracked, want %d", n, roster.DefaultMaxDirected)
		}
		s.Others(t)
	})
}
