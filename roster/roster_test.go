package roster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

var seq int

func nextID() string {
	seq++
	return fmt.Sprintf("r%d", seq)
}

// user is a logged-in test client with its account's bare JID.
type user struct {
	*testenv.Client
	bare string
}

func login(t *testing.T, s *testenv.Server, bare jid.JID, resource string) *user {
	t.Helper()
	return &user{Client: s.Dial(t, bare, "pw", resource), bare: bare.String()}
}

// online logs in, fetches the roster (so that pushes come) and sends
// initial presence.
func online(t *testing.T, s *testenv.Server, bare jid.JID, resource string) *user {
	t.Helper()
	u := login(t, s, bare, resource)
	u.roster(t, "")
	u.SendRaw(t, `<presence/>`)
	u.Expect(t, "own presence", isPresence(u.JID.String(), ""))
	return u
}

func (u *user) iq(t *testing.T, typ, payload string) *xmpp.Element {
	t.Helper()
	id := nextID()
	u.SendRaw(t, `<iq type="`+typ+`" id="`+id+`">`+payload+`</iq>`)
	return u.Expect(t, "answer to "+id, func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == id })
}

// roster gets the roster, with ver when it is not "-".
func (u *user) roster(t *testing.T, ver string) *xmpp.Element {
	t.Helper()
	q := `<query xmlns="jabber:iq:roster"/>`
	if ver != "" {
		q = `<query xmlns="jabber:iq:roster" ver="` + ver + `"/>`
	}
	el := u.iq(t, "get", q)
	if el.Get("type") != "result" {
		t.Fatalf("roster get: %s", el)
	}
	return el.Child(xmpp.NSRoster, "query")
}

func (u *user) send(t *testing.T, to, typ string) {
	t.Helper()
	u.SendRaw(t, `<presence to="`+to+`" type="`+typ+`"/>`)
}

// expectAll waits for stanzas matching each of match, in any order.
func (u *user) expectAll(t *testing.T, what string, match ...func(*xmpp.Element) bool) {
	t.Helper()
	done := make([]bool, len(match))
	left := len(match)
	u.Expect(t, what, func(el *xmpp.Element) bool {
		for i, m := range match {
			if !done[i] && m(el) {
				done[i] = true
				left--
				break
			}
		}
		return left == 0
	})
}

func isResult(id string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool { return el.Get("id") == id && el.Get("type") == "result" }
}

func isPresence(from, typ string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == from && el.Get("type") == typ
	}
}

// isPush matches a roster push of contact with the given subscription and
// ask attribute.
func isPush(contact, sub, ask string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		if el.Local != "iq" || el.Get("type") != "set" {
			return false
		}
		q := el.Child(xmpp.NSRoster, "query")
		if q == nil {
			return false
		}
		it := q.Child(xmpp.NSRoster, "item")
		return it != nil && it.Get("jid") == contact && it.Get("subscription") == sub && it.Get("ask") == ask
	}
}

func item(q *xmpp.Element, contact string) *xmpp.Element {
	for _, it := range q.Elements() {
		if it.Get("jid") == contact {
			return it
		}
	}
	return nil
}

func groups(it *xmpp.Element) string {
	var g []string
	for _, e := range it.Elements() {
		g = append(g, e.Text())
	}
	return strings.Join(g, ",")
}

// quiet checks that nothing but what skip accepts arrives before a ping's
// answer: what should not have been sent was not.
func (u *user) quiet(t *testing.T, what string, bad func(*xmpp.Element) bool) {
	t.Helper()
	id := nextID()
	u.SendRaw(t, `<iq type="get" id="`+id+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	u.Expect(t, "ping answer", func(el *xmpp.Element) bool {
		if bad(el) {
			t.Fatalf("%s: got %s", what, el)
		}
		return el.Get("id") == id
	})
}

func TestSubscriptionHandshake(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		a, b := online(t, s, aj, "a"), online(t, s, bj, "b")

		// alice asks (§3.1.2): her roster shows the pending request.
		a.send(t, b.bare, "subscribe")
		a.Expect(t, "push none+ask", isPush(b.bare, "none", "subscribe"))
		b.Expect(t, "subscription request", isPresence(a.bare, "subscribe"))
		// bob's roster does not show a bare request (§3.1.3).
		if it := item(b.roster(t, ""), a.bare); it != nil {
			t.Fatalf("pending-in item visible: %s", it)
		}

		// bob approves (§3.1.5): both rosters change, alice gets bob's presence.
		b.send(t, a.bare, "subscribed")
		b.Expect(t, "bob's push from", isPush(a.bare, "from", ""))
		a.expectAll(t, "approval, push and bob's presence", isPresence(b.bare, "subscribed"),
			isPush(b.bare, "to", ""), isPresence(b.JID.String(), ""))

		// And back: bob asks, alice approves → both.
		b.send(t, a.bare, "subscribe")
		b.Expect(t, "push from+ask", isPush(a.bare, "from", "subscribe"))
		a.Expect(t, "request", isPresence(b.bare, "subscribe"))
		a.quiet(t, "no push when only Pending In changed", isPush(b.bare, "to", ""))
		a.send(t, b.bare, "subscribed")
		a.Expect(t, "alice both", isPush(b.bare, "both", ""))
		b.expectAll(t, "approval, push and alice's presence", isPresence(a.bare, "subscribed"),
			isPush(a.bare, "both", ""), isPresence(a.JID.String(), ""))

		// A new resource of alice is broadcast to bob, and probes bob.
		a2 := login(t, s, aj, "a2")
		a2.SendRaw(t, `<presence><priority>5</priority></presence>`)
		b.Expect(t, "a2 available", isPresence(a2.JID.String(), ""))
		a2.expectAll(t, "bob's presence from the probe and alice's other resource",
			isPresence(b.JID.String(), ""), isPresence(a.JID.String(), ""))
		a.Expect(t, "a2 on a", isPresence(a2.JID.String(), ""))

		// bob unsubscribes from alice (§3.3): he stops receiving her
		// presence, and gets her resources' unavailable.
		b.send(t, a.bare, "unsubscribe")
		b.expectAll(t, "push and alice's unavailable", isPush(a.bare, "from", ""),
			isPresence(a.JID.String(), "unavailable"), isPresence(a2.JID.String(), "unavailable"))
		a.expectAll(t, "unsubscribe and push", isPresence(b.bare, "unsubscribe"), isPush(b.bare, "to", ""))

		// alice cancels bob's subscription to her... she has 'to' only now;
		// her unsubscribe leaves none on both sides.
		a.send(t, b.bare, "unsubscribe")
		a.expectAll(t, "push none and bob's unavailable", isPush(b.bare, "none", ""), isPresence(b.JID.String(), "unavailable"))
		b.Expect(t, "bob none", isPush(a.bare, "none", ""))
	})
}

func TestSubscriptionEdgeCases(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
	a := online(t, s, aj, "a")

	t.Run("UnknownContact", func(t *testing.T) {
		a.send(t, "nobody@localhost", "subscribe")
		a.Expect(t, "unsubscribed from a missing account", isPresence("nobody@localhost", "unsubscribed"))
	})

	t.Run("RequestWaitsForLogin", func(t *testing.T) {
		a.send(t, bj.String(), "subscribe")
		a.Expect(t, "ask", isPush(bj.String(), "none", "subscribe"))
		b := login(t, s, bj, "b")
		b.roster(t, "")
		b.SendRaw(t, `<presence/>`)
		b.Expect(t, "stored request at login", isPresence(aj.String(), "subscribe"))
		b.Close()
		// Re-sent at each login until answered.
		b = login(t, s, bj, "b2")
		b.SendRaw(t, `<presence/>`)
		b.Expect(t, "request again", isPresence(aj.String(), "subscribe"))
		b.send(t, aj.String(), "unsubscribed") // deny
		a.expectAll(t, "denial and push", isPresence(bj.String(), "unsubscribed"), isPush(bj.String(), "none", ""))
		b.Close()
		b = login(t, s, bj, "b3")
		b.SendRaw(t, `<presence/>`)
		b.Expect(t, "own presence", isPresence(b.JID.String(), ""))
		b.quiet(t, "a denied request is not re-sent", isPresence(aj.String(), "subscribe"))
	})

	t.Run("PreApproval", func(t *testing.T) {
		// alice pre-approves carol (§3.4): nothing is sent, the item says so.
		a.send(t, cj.String(), "subscribed")
		el := a.Expect(t, "pre-approved push", isPush(cj.String(), "none", ""))
		if it := el.Child(xmpp.NSRoster, "query").Child(xmpp.NSRoster, "item"); it.Get("approved") != "true" {
			t.Fatalf("no approved attribute: %s", el)
		}
		c := online(t, s, cj, "c")
		c.quiet(t, "pre-approval is not sent", isPresence(aj.String(), "subscribed"))
		c.send(t, aj.String(), "subscribe")
		c.expectAll(t, "approval at once, push, alice's presence", isPresence(aj.String(), "subscribed"),
			isPush(aj.String(), "to", ""), isPresence(a.JID.String(), ""))
		a.Expect(t, "alice's push", isPush(cj.String(), "from", ""))
	})

	t.Run("ProbeWithoutSubscription", func(t *testing.T) {
		d := online(t, s, s.AddUser(t, "dave", "pw"), "d")
		// alice's server answers unsubscribed, which dave's server takes as
		// a (no-op) cancellation: dave sees nothing of alice.
		d.send(t, aj.String(), "probe")
		d.quiet(t, "no presence for a probe without subscription", func(el *xmpp.Element) bool {
			return el.Local == "presence" && strings.HasPrefix(el.Get("from"), aj.String())
		})
	})

	t.Run("BadPresence", func(t *testing.T) {
		for _, tc := range []struct{ name, send, cond string }{
			{"unknown type", `<presence id="x1" type="bogus" to="bob@localhost"/>`, "bad-request"},
			{"subscription without to", `<presence id="x1" type="subscribe"/>`, "bad-request"},
			{"malformed to", `<presence id="x1" type="subscribe" to="a@b@c"/>`, "jid-malformed"},
			{"other domain", `<presence id="x1" to="juliet@example.net"/>`, "remote-server-not-found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				a.SendRaw(t, tc.send)
				el := a.Expect(t, "error", func(el *xmpp.Element) bool { return el.Get("id") == "x1" })
				if el.Get("type") != "error" || el.Child("", "error").Child("", tc.cond) == nil {
					t.Fatalf("got %s, want %s", el, tc.cond)
				}
			})
		}
		// Presence to an account that does not exist vanishes (RFC 6121
		// §8.5.1), and nothing breaks.
		a.SendRaw(t, `<presence id="x2" to="nobody@localhost"/>`)
		a.quiet(t, "no answer to presence for nobody", func(el *xmpp.Element) bool { return el.Get("id") == "x2" })
	})
}

func TestRosterSetAndVersioning(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj := s.AddUser(t, "alice", "pw")
		a := online(t, s, aj, "a")
		a2 := online(t, s, aj, "a2")
		q := a.roster(t, "")
		v0 := q.Get("ver")
		if v0 == "" || len(q.Elements()) != 0 {
			t.Fatalf("empty roster: %s", q)
		}
		if q := a.roster(t, v0); q != nil {
			t.Fatalf("unchanged roster with ver: want an empty result, got %s", q)
		}
		// The pusher gets the push too (§2.3.2), whichever comes first.
		a.SendRaw(t, `<iq type="set" id="set1"><query xmlns="jabber:iq:roster"><item jid="nurse@localhost" name="Nurse"><group>Servants</group><group>A</group></item></query></iq>`)
		a.expectAll(t, "result and push", isResult("set1"),
			isPush("nurse@localhost", "none", ""))
		push := a2.Expect(t, "push on the second resource", isPush("nurse@localhost", "none", ""))
		v1 := push.Child(xmpp.NSRoster, "query").Get("ver")
		if v1 == "" || v1 == v0 {
			t.Fatalf("push version %q after %q", v1, v0)
		}
		q = a.roster(t, v0)
		if q == nil || q.Get("ver") != v1 {
			t.Fatalf("stale version got %s, want the roster at %s", q, v1)
		}
		it := item(q, "nurse@localhost")
		if it == nil || it.Get("name") != "Nurse" || groups(it) != "A,Servants" {
			t.Fatalf("item %s", it)
		}
		if q := a.roster(t, v1); q != nil {
			t.Fatalf("want empty result at current version, got %s", q)
		}

		for _, tc := range []struct{ name, item, cond string }{
			{"two items", `<item jid="x@localhost"/><item jid="y@localhost"/>`, "bad-request"},
			{"duplicate group", `<item jid="x@localhost"><group>g</group><group>g</group></item>`, "bad-request"},
			{"empty group", `<item jid="x@localhost"><group></group></item>`, "not-acceptable"},
			{"bad jid", `<item jid="@@"/>`, "jid-malformed"},
			{"remove missing", `<item jid="x@localhost" subscription="remove"/>`, "item-not-found"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				el := a.iq(t, "set", `<query xmlns="jabber:iq:roster">`+tc.item+`</query>`)
				if e := el.Child("", "error"); el.Get("type") != "error" || e.Child("", tc.cond) == nil {
					t.Fatalf("got %s, want %s", el, tc.cond)
				}
			})
		}

		res := a.iq(t, "set", `<query xmlns="jabber:iq:roster"><item jid="nurse@localhost" subscription="remove"/></query>`)
		if res.Get("type") != "result" {
			t.Fatalf("remove: %s", res)
		}
		a2.Expect(t, "remove push", isPush("nurse@localhost", "remove", ""))
		if q := a.roster(t, ""); item(q, "nurse@localhost") != nil {
			t.Fatalf("removed item still there: %s", q)
		}

		// Another account's roster is not ours to read.
		bj := s.AddUser(t, "bob", "pw")
		a.SendRaw(t, `<iq type="get" id="other" to="`+bj.String()+`"><query xmlns="jabber:iq:roster"/></iq>`)
		el := a.Expect(t, "forbidden", func(el *xmpp.Element) bool { return el.Get("id") == "other" })
		if el.Get("type") != "error" {
			t.Fatalf("read bob's roster: %s", el)
		}
	})
}

func TestQuotas(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, MaxRosterItems: 2, MaxOfflineMessages: 2})
	})
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	a := online(t, s, aj, "a")
	for i := range 3 {
		el := a.iq(t, "set", fmt.Sprintf(`<query xmlns="jabber:iq:roster"><item jid="c%d@localhost"/></query>`, i))
		want := "result"
		if i == 2 {
			want = "error"
		}
		if el.Get("type") != want {
			t.Fatalf("item %d: %s", i, el)
		}
		if i == 2 {
			e := el.Child("", "error")
			if e.Child("", "not-allowed") == nil || !strings.Contains(e.Child("", "text").Text(), "at most 2") {
				t.Fatalf("limit error does not say why: %s", el)
			}
		}
	}
	// Changing an item of a full roster is still allowed.
	if el := a.iq(t, "set", `<query xmlns="jabber:iq:roster"><item jid="c0@localhost" name="C"/></query>`); el.Get("type") != "result" {
		t.Fatalf("rename in a full roster: %s", el)
	}
	for i := range 3 {
		a.SendRaw(t, fmt.Sprintf(`<message id="o%d" type="chat" to="%s"><body>m%d</body></message>`, i, bj, i))
	}
	el := a.Expect(t, "quota error", func(el *xmpp.Element) bool { return el.Get("id") == "o2" })
	if el.Get("type") != "error" || el.Child("", "error").Child("", "service-unavailable") == nil {
		t.Fatalf("third offline message: %s", el)
	}
}

func TestPresenceOnAbruptClose(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		subscribeBoth(t, s, aj, bj)
		a, b := online(t, s, aj, "a"), online(t, s, bj, "b")
		a.Expect(t, "bob's presence", isPresence(b.JID.String(), ""))
		// Directed presence to someone who is not a contact.
		cj := s.AddUser(t, "carol", "pw")
		c := online(t, s, cj, "c")
		b.SendRaw(t, `<presence to="`+c.JID.String()+`"><status>hi</status></presence>`)
		c.Expect(t, "directed presence", isPresence(b.JID.String(), ""))
		b.Abort()
		a.Expect(t, "unavailable after abort", isPresence(b.JID.String(), "unavailable"))
		c.Expect(t, "directed unavailable after abort", isPresence(b.JID.String(), "unavailable"))
	})
}

// subscribeBoth gives a and b a mutual subscription through storage.
func subscribeBoth(t *testing.T, s *testenv.Server, a, b jid.JID) {
	t.Helper()
	ctx := context.Background()
	for _, p := range [][2]jid.JID{{a, b}, {b, a}} {
		err := s.Store.PutRosterItem(ctx, p[0].String(), storage.RosterItem{Contact: p[1].String(), Subscription: storage.SubBoth}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestOfflineMessages(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		a := online(t, s, aj, "a")
		for i := range 3 {
			a.SendRaw(t, fmt.Sprintf(`<message type="chat" to="%s"><body>m%d</body></message>`, bj, i))
		}
		a.SendRaw(t, `<message type="headline" to="`+bj.String()+`"><body>headline</body></message>`)
		a.quiet(t, "no error for stored messages", func(el *xmpp.Element) bool { return el.Get("type") == "error" })
		b := login(t, s, bj, "b")
		b.SendRaw(t, `<presence/>`)
		for i := range 3 {
			want := fmt.Sprintf("m%d", i)
			el := b.Expect(t, want, func(el *xmpp.Element) bool { return el.Local == "message" })
			if body := el.Child("", "body"); body == nil || body.Text() != want {
				t.Fatalf("got %s, want body %s", el, want)
			}
			d := el.Child("urn:xmpp:delay", "delay")
			if d == nil || d.Get("stamp") == "" || d.Get("from") != "localhost" {
				t.Fatalf("no delay stamp: %s", el)
			}
			if el.Get("from") != a.JID.String() {
				t.Fatalf("from %q", el.Get("from"))
			}
		}
		b.quiet(t, "headlines are not stored", func(el *xmpp.Element) bool { return el.Local == "message" })
		b.Close()
		b = login(t, s, bj, "b2")
		b.SendRaw(t, `<presence/>`)
		b.quiet(t, "delivered messages are gone", func(el *xmpp.Element) bool { return el.Local == "message" })
	})
}

// TestDatabaseGone: with storage unreachable, an online account's roster
// is still answered from memory (the roster cache), changing it fails with
// a clear error, messages that cannot be stored come back to their sender
// rather than vanish, and online users keep talking.
func TestDatabaseGone(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		s.AddUser(t, "carol", "pw")
		a, b := online(t, s, aj, "a"), online(t, s, bj, "b")
		s.Store.Close()

		el := a.iq(t, "get", `<query xmlns="jabber:iq:roster"/>`)
		if el.Get("type") != "result" || el.Child("jabber:iq:roster", "query") == nil {
			t.Fatalf("roster get without a database, from the cache: %s", el)
		}
		el = a.iq(t, "set", `<query xmlns="jabber:iq:roster"><item jid="carol@localhost"/></query>`)
		if e := el.Child("", "error"); el.Get("type") != "error" || e.Child("", "internal-server-error") == nil {
			t.Fatalf("roster set without a database: %s", el)
		}
		a.SendRaw(t, `<message id="lost" type="chat" to="carol@localhost"><body>for later</body></message>`)
		el = a.Expect(t, "error for a message that cannot be stored", func(el *xmpp.Element) bool { return el.Get("id") == "lost" })
		if el.Get("type") != "error" {
			t.Fatalf("got %s", el)
		}
		testenv.Exchange(t, a.Client, b.Client)
		testenv.Exchange(t, b.Client, a.Client)
	})
}
