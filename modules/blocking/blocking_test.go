package blocking_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/blocking"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

var seq atomic.Int64

func nextID() string { return fmt.Sprintf("b%d", seq.Add(1)) }

// online signs in a resource and waits for its own presence.
func online(t *testing.T, s *testenv.Server, bare jid.JID, resource string) *testenv.Client {
	t.Helper()
	c := s.Dial(t, bare, "pw", resource)
	c.SendRaw(t, `<presence/>`)
	c.Expect(t, "own presence", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == c.JID.String()
	})
	return c
}

func items(jids ...string) string {
	var b strings.Builder
	for _, j := range jids {
		b.WriteString(`<item jid="` + j + `"/>`)
	}
	return b.String()
}

// blocklist asks for c's list and returns its JIDs.
func blocklist(t *testing.T, c *testenv.Client) []string {
	t.Helper()
	res := c.IQ(t, "get", "", `<blocklist xmlns="`+blocking.NS+`"/>`)
	bl := res.Child(blocking.NS, "blocklist")
	if res.Get("type") != "result" || bl == nil {
		t.Fatalf("blocklist: %s", res)
	}
	var out []string
	for _, it := range bl.Elements() {
		out = append(out, it.Get("jid"))
	}
	return out
}

// set sends a block or unblock from c, checks it succeeded, and that c
// got the push (§3.3: every resource that asked for the list, the sender
// too), which the server sends before its answer.
func set(t *testing.T, c *testenv.Client, what string, jids ...string) {
	t.Helper()
	id := nextID()
	c.SendRaw(t, `<iq type="set" id="`+id+`"><`+what+` xmlns="`+blocking.NS+`">`+items(jids...)+`</`+what+`></iq>`)
	var push *xmpp.Element
	res := c.Expect(t, "answer to "+id, func(el *xmpp.Element) bool {
		if el.Local == "iq" && el.Get("type") == "set" && el.Child(blocking.NS, what) != nil {
			push = el
		}
		return el.Local == "iq" && el.Get("id") == id && (el.Get("type") == "result" || el.Get("type") == "error")
	})
	if res.Get("type") != "result" {
		t.Fatalf("%s %v: %s", what, jids, res)
	}
	if push == nil {
		t.Fatalf("%s %v: no push to the sender before the answer", what, jids)
	}
	checkPush(t, c, push, what, jids)
}

// expectPush waits for the push of a block or unblock of jids to c.
func expectPush(t *testing.T, c *testenv.Client, what string, jids ...string) {
	t.Helper()
	el := c.Expect(t, what+" push", func(el *xmpp.Element) bool {
		return el.Local == "iq" && el.Get("type") == "set" && el.Child(blocking.NS, what) != nil
	})
	checkPush(t, c, el, what, jids)
}

func checkPush(t *testing.T, c *testenv.Client, el *xmpp.Element, what string, jids []string) {
	t.Helper()
	if el.Get("from") != c.JID.Bare().String() {
		t.Fatalf("push from %q, want the account's bare JID: %s", el.Get("from"), el)
	}
	var got []string
	for _, it := range el.Child(blocking.NS, what).Elements() {
		got = append(got, it.Get("jid"))
	}
	if strings.Join(got, " ") != strings.Join(jids, " ") {
		t.Fatalf("%s push items %q, want %q", what, got, jids)
	}
	c.SendRaw(t, `<iq type="result" id="`+el.Get("id")+`"/>`)
}

// expectError waits for an error stanza of kind from 'from' with the
// condition, and <blocked/> when blocked.
func expectError(t *testing.T, c *testenv.Client, kind, from string, cond xmpp.Condition, blocked bool) {
	t.Helper()
	el := c.Expect(t, string(cond)+" from "+from, func(el *xmpp.Element) bool {
		return el.Local == kind && el.Get("type") == "error"
	})
	e := el.Child(xmpp.NSClient, "error")
	if el.Get("from") != from || e == nil || e.Child(xmpp.NSStanzas, string(cond)) == nil {
		t.Fatalf("want %s error from %s, got %s", cond, from, el)
	}
	if blocked != (e.Child(blocking.NSErrors, "blocked") != nil) {
		t.Fatalf("error with <blocked/> = %v, want %v: %s", !blocked, blocked, el)
	}
}

// quiet checks that nothing bad reaches c before the answer to a ping it
// sends now: what the server queued for c earlier is written first.
func quiet(t *testing.T, c *testenv.Client, what string, bad func(*xmpp.Element) bool) {
	t.Helper()
	id := nextID()
	c.SendRaw(t, `<iq type="get" id="`+id+`" to="`+testenv.Domain+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	c.Expect(t, "ping answer", func(el *xmpp.Element) bool {
		if bad(el) {
			t.Fatalf("%s: %s got %s", what, c.JID, el)
		}
		return el.Local == "iq" && el.Get("id") == id
	})
}

func from(who string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool { return strings.HasPrefix(el.Get("from"), who) }
}

func isPresence(from, typ string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == from && el.Get("type") == typ
	}
}

// gone waits until the account has no session on s.
func gone(t *testing.T, s *testenv.Server, bare jid.JID) {
	t.Helper()
	deadline := time.Now().Add(testenv.Timeout)
	for len(s.SessionsOf(bare)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s still has sessions", bare)
		}
		time.Sleep(time.Millisecond)
	}
}

func chat(to, body string) string {
	return `<message type="chat" to="` + to + `"><body>` + body + `</body></message>`
}

// subscribeBoth gives a and b a mutual subscription through storage.
func subscribeBoth(t *testing.T, s *testenv.Server, a, b jid.JID) {
	t.Helper()
	for _, p := range [][2]jid.JID{{a, b}, {b, a}} {
		err := s.Store.PutRosterItem(context.Background(), p[0].String(), storage.RosterItem{Contact: p[1].String(), Subscription: storage.SubBoth}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestBlocking: alice, with two resources, blocks bob, her contact, and
// then a domain; everything between them stops both ways, and comes back
// when she unblocks.
func TestBlocking(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		st := testenv.OpenStore(t, backend)
		s := testenv.Start(t, backend, func(srv *xmpp.Server) { srv.Store = st })
		aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
		subscribeBoth(t, s, aj, bj)
		alice, bob, carol := aj.String(), bj.String(), cj.String()

		a1 := online(t, s, aj, "a1")
		a2 := online(t, s, aj, "a2")
		b := online(t, s, bj, "b")
		a1.Expect(t, "bob's presence", isPresence(b.JID.String(), ""))
		a2.Expect(t, "bob's presence", isPresence(b.JID.String(), ""))
		b.Expect(t, "a1's presence", isPresence(a1.JID.String(), ""))
		b.Expect(t, "a2's presence", isPresence(a2.JID.String(), ""))
		c := online(t, s, cj, "c")

		// §3.1
		info := a1.IQ(t, "get", testenv.Domain, `<query xmlns="http://jabber.org/protocol/disco#info"/>`)
		if !strings.Contains(info.String(), `var="`+blocking.NS+`"`) {
			t.Fatalf("server features lack %s: %s", blocking.NS, info)
		}
		// §3.2: empty, and both resources now get pushes.
		if l := blocklist(t, a1); len(l) != 0 {
			t.Fatalf("new account's block list: %q", l)
		}
		blocklist(t, a2)

		// §3.3: a1 blocks bob; both resources get the push, bob
		// unavailable presence from each of alice's resources.
		set(t, a1, "block", bob)
		expectPush(t, a2, "block", bob)
		b.Expect(t, "a1 unavailable", isPresence(a1.JID.String(), "unavailable"))
		b.Expect(t, "a2 unavailable", isPresence(a2.JID.String(), "unavailable"))
		if l := blocklist(t, a2); strings.Join(l, " ") != bob {
			t.Fatalf("block list after the block: %q", l)
		}

		t.Run("inbound", func(t *testing.T) {
			// §3.6: his messages get <service-unavailable/>, to her bare
			// JID and to a resource; his IQs too; his presence nothing.
			b.SendRaw(t, chat(alice, "to bare"))
			expectError(t, b, "message", alice, xmpp.ServiceUnavailable, false)
			b.SendRaw(t, chat(a2.JID.String(), "to a2"))
			expectError(t, b, "message", a2.JID.String(), xmpp.ServiceUnavailable, false)
			b.SendRaw(t, `<iq type="get" id="p1" to="`+a1.JID.String()+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
			expectError(t, b, "iq", a1.JID.String(), xmpp.ServiceUnavailable, false)
			b.SendRaw(t, `<presence><show>away</show></presence>`)
			b.SendRaw(t, `<presence to="`+a1.JID.String()+`"/>`)
			b.SendRaw(t, `<presence type="subscribe" to="`+alice+`"/>`)
			for _, a := range []*testenv.Client{a1, a2} {
				quiet(t, a, "nothing from bob", from(bob))
			}
			// Bob's second resource signs in: no presence of alice's
			// (initial presence, §3.3).
			b2 := online(t, s, bj, "b2")
			quiet(t, b2, "no presence from alice", from(alice))
			b2.Close()
		})

		t.Run("outbound", func(t *testing.T) {
			// §3.7: from either resource, whichever blocked.
			for _, a := range []*testenv.Client{a1, a2} {
				a.SendRaw(t, chat(bob, "to bob"))
				expectError(t, a, "message", bob, xmpp.NotAcceptable, true)
				a.SendRaw(t, `<presence to="`+b.JID.String()+`"/>`)
				expectError(t, a, "presence", b.JID.String(), xmpp.NotAcceptable, true)
				a.SendRaw(t, `<iq type="get" id="p2" to="`+b.JID.String()+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
				expectError(t, a, "iq", b.JID.String(), xmpp.NotAcceptable, true)
			}
			// A presence update reaches no resource of bob's.
			a1.SendRaw(t, `<presence><show>dnd</show></presence>`)
			a2.Expect(t, "a1's update", isPresence(a1.JID.String(), ""))
			quiet(t, b, "nothing from alice", from(alice))
		})

		t.Run("domain", func(t *testing.T) {
			// A domain item blocks everyone there: carol too.
			c.SendRaw(t, chat(alice, "before"))
			a1.Expect(t, "carol's message", from(carol))
			set(t, a2, "block", testenv.Domain)
			expectPush(t, a1, "block", testenv.Domain)
			c.SendRaw(t, chat(alice, "after"))
			expectError(t, c, "message", alice, xmpp.ServiceUnavailable, false)
			a1.SendRaw(t, chat(carol, "to carol"))
			expectError(t, a1, "message", carol, xmpp.NotAcceptable, true)
			set(t, a1, "unblock", testenv.Domain)
			expectPush(t, a2, "unblock", testenv.Domain)
			c.SendRaw(t, chat(alice, "again"))
			a1.Expect(t, "carol's message again", func(el *xmpp.Element) bool {
				return el.Local == "message" && el.Get("from") == c.JID.String() && el.Get("type") == "chat"
			})
			// Bob stays blocked.
			b.SendRaw(t, chat(alice, "still"))
			expectError(t, b, "message", alice, xmpp.ServiceUnavailable, false)
		})

		t.Run("offline", func(t *testing.T) {
			// Alice gone: bob's message is refused, not stored.
			a1.Close()
			a2.Close()
			// Bob is not told (alice blocks him): wait for the server.
			gone(t, s, aj)
			b.SendRaw(t, chat(alice, "while away"))
			expectError(t, b, "message", alice, xmpp.ServiceUnavailable, false)
			msgs, err := st.OfflineMessages(context.Background(), alice)
			if err != nil || len(msgs) != 0 {
				t.Fatalf("offline messages for alice: %d, %v; want none", len(msgs), err)
			}
			// A message that is not refused is stored: the check is real.
			c.SendRaw(t, chat(alice, "stored"))
			quiet(t, c, "no error", func(el *xmpp.Element) bool { return el.Get("type") == "error" })
			if msgs, _ := st.OfflineMessages(context.Background(), alice); len(msgs) != 1 {
				t.Fatalf("offline messages for alice: %d, want carol's", len(msgs))
			}
		})

		t.Run("restart", func(t *testing.T) {
			// A server started afresh on the same store has the list.
			s2 := testenv.Start(t, backend, func(srv *xmpp.Server) { srv.Store = st })
			a3 := online(t, s2, aj, "a3")
			if l := blocklist(t, a3); strings.Join(l, " ") != bob {
				t.Fatalf("block list on a new server: %q", l)
			}
			b3 := online(t, s2, bj, "b3")
			b3.SendRaw(t, chat(alice, "new server"))
			expectError(t, b3, "message", alice, xmpp.ServiceUnavailable, false)
			quiet(t, a3, "nothing from bob", from(bob))

			// §3.5: unblock all; bob gets alice's presence again (§3.4).
			set(t, a3, "unblock")
			b3.Expect(t, "a3's presence again", isPresence(a3.JID.String(), ""))
			b3.SendRaw(t, chat(alice, "welcome back"))
			a3.Expect(t, "bob's message", func(el *xmpp.Element) bool {
				return el.Local == "message" && el.Get("from") == b3.JID.String() && el.Get("type") == "chat"
			})
			if l := blocklist(t, a3); len(l) != 0 {
				t.Fatalf("block list after unblock all: %q", l)
			}
		})
	})
}

// TestErrors: the XEP's errors for malformed requests, and nobody reads
// or changes another account's list.
func TestErrors(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	a := online(t, s, aj, "a")
	b := online(t, s, bj, "b")
	for _, tc := range []struct {
		name, to, payload string
		cond              xmpp.Condition
	}{
		{"block without items", "", `<block xmlns="` + blocking.NS + `"/>`, xmpp.BadRequest},
		{"malformed JID", "", `<block xmlns="` + blocking.NS + `"><item jid="@bad@"/></block>`, xmpp.JIDMalformed},
		{"empty JID", "", `<unblock xmlns="` + blocking.NS + `"><item jid=""/></unblock>`, xmpp.JIDMalformed},
		{"someone else's list", aj.String(), `<block xmlns="` + blocking.NS + `">` + items("x@localhost") + `</block>`, xmpp.NotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := b.IQ(t, "set", tc.to, tc.payload)
			e := res.Child(xmpp.NSClient, "error")
			if res.Get("type") != "error" || e == nil || e.Child(xmpp.NSStanzas, string(tc.cond)) == nil {
				t.Fatalf("want %s, got %s", tc.cond, res)
			}
		})
	}
	if l := blocklist(t, a); len(l) != 0 {
		t.Fatalf("alice's list changed by bob: %q", l)
	}
}
