package csi_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/csi"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

const (
	inactive = `<inactive xmlns="` + csi.NS + `"/>`
	active   = `<active xmlns="` + csi.NS + `"/>`
	nsDelay  = "urn:xmpp:delay"
)

var seq atomic.Int64

func nextID() string { return fmt.Sprintf("q%d", seq.Add(1)) }

// start runs a server with the MUC service and csi.Module m in place of
// the default one.
func start(t *testing.T, m *csi.Module) *testenv.Server {
	return testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		mods := modules.Default(modules.Options{Store: srv.Store, MUC: true})
		for i, mod := range mods {
			if _, ok := mod.(*csi.Module); ok {
				mods[i] = m
			}
		}
		srv.Modules = mods
	})
}

// friends makes a and b subscribed to each other's presence.
func friends(t *testing.T, s *testenv.Server, a, b jid.JID) {
	t.Helper()
	ctx := context.Background()
	for _, p := range [][2]jid.JID{{a, b}, {b, a}} {
		if err := s.Store.PutRosterItem(ctx, p[0].String(), storage.RosterItem{Contact: p[1].String(), Subscription: storage.SubBoth}, 0); err != nil {
			t.Fatal(err)
		}
	}
}

func isPresenceFrom(from string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool { return el.Local == "presence" && el.Get("from") == from }
}

// barrier sends a ping to the server and returns what c got before the
// answer: the server handles what c sent before the ping first (XEP-0352
// §5.1), and writes what it queued for c before the answer.
func barrier(t *testing.T, c *testenv.Client) []*xmpp.Element {
	t.Helper()
	id := nextID()
	c.SendRaw(t, `<iq type="get" id="`+id+`" to="`+testenv.Domain+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	var got []*xmpp.Element
	c.Expect(t, "ping answer", func(el *xmpp.Element) bool {
		if el.Local == "iq" && el.Get("id") == id {
			return true
		}
		got = append(got, el)
		return false
	})
	return got
}

// online signs in with initial presence and waits for its echo.
func online(t *testing.T, s *testenv.Server, bare jid.JID, resource string) *testenv.Client {
	t.Helper()
	c := s.Dial(t, bare, "pw", resource)
	c.SendRaw(t, `<presence/>`)
	c.Expect(t, "own presence", isPresenceFrom(c.JID.String()))
	return c
}

// TestPresenceHeldWhileInactive: two contacts change presence fifty times
// each while alice's client is inactive; she gets none of it, but gets
// a message, an IQ and a subscription request at once, and, when active
// again, the latest presence of each contact, once.
func TestPresenceHeldWhileInactive(t *testing.T) {
	s := start(t, &csi.Module{})
	aj, cj, dj, ej := s.AddUser(t, "alice", "pw"), s.AddUser(t, "carol", "pw"), s.AddUser(t, "dave", "pw"), s.AddUser(t, "eve", "pw")
	friends(t, s, aj, cj)
	friends(t, s, aj, dj)
	carol, dave := online(t, s, cj, "c"), online(t, s, dj, "d")
	alice := s.Dial(t, aj, "pw", "a")
	alice.SendRaw(t, `<presence/>`)
	for _, from := range []string{carol.JID.String(), dave.JID.String()} {
		alice.Expect(t, "presence of "+from, isPresenceFrom(from))
	}

	alice.SendRaw(t, inactive)
	barrier(t, alice)

	// carol's last is available after an unavailable; dave's last is
	// unavailable.
	const n = 50
	for i := range n {
		if i == n-2 {
			carol.SendRaw(t, `<presence type="unavailable"/>`)
		} else {
			carol.SendRaw(t, fmt.Sprintf(`<presence><status>c%d</status></presence>`, i))
		}
		if i == n-1 {
			dave.SendRaw(t, `<presence type="unavailable"/>`)
		} else {
			dave.SendRaw(t, fmt.Sprintf(`<presence><show>away</show><status>d%d</status></presence>`, i))
		}
	}
	// Each contact's reader handles its stanzas in order: when alice has
	// the message and the IQ, she would have had every presence before.
	carol.SendRaw(t, `<message type="chat" to="`+alice.JID.String()+`"><body>now</body></message>`)
	dave.SendRaw(t, `<iq type="get" id="dping" to="`+alice.JID.String()+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	gotMsg, gotIQ := false, false
	alice.Expect(t, "message and IQ", func(el *xmpp.Element) bool {
		switch {
		case el.Local == "presence":
			t.Fatalf("presence while inactive: %s", el)
		case el.Local == "message" && el.Get("from") == carol.JID.String():
			gotMsg = true
		case el.Local == "iq" && el.Get("id") == "dping":
			gotIQ = true
			alice.SendRaw(t, `<iq type="result" id="dping" to="`+dave.JID.String()+`"/>`)
		}
		return gotMsg && gotIQ
	})
	dave.Expect(t, "pong from alice", func(el *xmpp.Element) bool { return el.Local == "iq" && el.Get("id") == "dping" })

	// A subscription request needs an answer: it is not held.
	eve := online(t, s, ej, "e")
	eve.SendRaw(t, `<presence type="subscribe" to="`+aj.String()+`"/>`)
	alice.Expect(t, "subscription request", func(el *xmpp.Element) bool {
		if el.Local == "presence" && el.Get("type") != "subscribe" {
			t.Fatalf("presence while inactive: %s", el)
		}
		return el.Local == "presence" && el.Get("from") == ej.String()
	})

	// Active: the held presence comes before the answer to the next
	// stanza (§5.1), one per contact, the latest.
	alice.SendRaw(t, active)
	got := map[string][]*xmpp.Element{}
	for _, el := range barrier(t, alice) {
		if el.Local == "presence" {
			got[el.Get("from")] = append(got[el.Get("from")], el)
		}
	}
	if len(got) != 2 || len(got[carol.JID.String()]) != 1 || len(got[dave.JID.String()]) != 1 {
		t.Fatalf("after <active/>: %v, want one presence from each of %s and %s", got, carol.JID, dave.JID)
	}
	c, d := got[carol.JID.String()][0], got[dave.JID.String()][0]
	if c.Get("type") != "" || c.Child(xmpp.NSClient, "status").Text() != fmt.Sprintf("c%d", n-1) {
		t.Errorf("carol's presence: %s, want status c%d", c, n-1)
	}
	if d.Get("type") != "unavailable" {
		t.Errorf("dave's presence: %s, want unavailable", d)
	}
	for _, p := range []*xmpp.Element{c, d} {
		if p.Get("to") != alice.JID.String() || p.Child(nsDelay, "delay") == nil {
			t.Errorf("held presence %s: want to %s and a delay stamp", p, alice.JID)
		}
	}

	// Active again, presence goes at once.
	carol.SendRaw(t, `<presence><status>back</status></presence>`)
	p := alice.Expect(t, "live presence", isPresenceFrom(carol.JID.String()))
	if p.Child(nsDelay, "delay") != nil || p.Child(xmpp.NSClient, "status").Text() != "back" {
		t.Fatalf("live presence: %s", p)
	}
}

// TestHeldBound: past MaxHeld senders, what is held goes out at once.
func TestHeldBound(t *testing.T) {
	s := start(t, &csi.Module{MaxHeld: 3})
	aj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "carol", "pw")
	friends(t, s, aj, cj)
	alice := online(t, s, aj, "a")
	alice.SendRaw(t, inactive)
	barrier(t, alice)
	// Each resource of carol is a sender of its own.
	var cs []*testenv.Client
	for i := range 5 {
		c := online(t, s, cj, fmt.Sprintf("c%d", i))
		cs = append(cs, c)
		if i < 3 {
			if got := barrier(t, alice); len(got) != 0 {
				t.Fatalf("with %d held: got %v", i+1, got)
			}
		}
	}
	// The fourth sender went past the bound: four came, the fifth waits.
	from := map[string]bool{}
	for _, el := range barrier(t, alice) {
		if el.Local == "presence" {
			from[el.Get("from")] = true
		}
	}
	if len(from) != 4 || !from[cs[3].JID.String()] || from[cs[4].JID.String()] {
		t.Fatalf("after the bound: presence from %v, want c0 to c3", from)
	}
	alice.SendRaw(t, active)
	got := barrier(t, alice)
	if len(got) != 1 || got[0].Get("from") != cs[4].JID.String() {
		t.Fatalf("after <active/>: %v, want c4's presence", got)
	}
}

// TestHeldBytesBound: past MaxHeldBytes, what is held goes out at once.
func TestHeldBytesBound(t *testing.T) {
	s := start(t, &csi.Module{MaxHeldBytes: 2000})
	aj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "carol", "pw")
	friends(t, s, aj, cj)
	alice := online(t, s, aj, "a")
	alice.SendRaw(t, inactive)
	barrier(t, alice)
	// With the address, the delay stamp and the avatar hash (XEP-0153) a
	// presence is about 950 bytes.
	status := strings.Repeat("x", 700)
	for i := range 3 {
		c := s.Dial(t, cj, "pw", fmt.Sprintf("c%d", i))
		c.SendRaw(t, `<presence><status>`+status+`</status></presence>`)
		c.Expect(t, "own presence", isPresenceFrom(c.JID.String()))
		got := barrier(t, alice)
		// Two are held; the third goes past 2000.
		if want := map[int]int{0: 0, 1: 0, 2: 3}[i]; len(got) != want {
			t.Fatalf("after %d presences of %d bytes: got %d stanzas, want %d", i+1, len(status), len(got), want)
		}
	}
}

// TestRoomPresenceHeld: a room's presence, serialised once for all its
// occupants, is held for an inactive occupant and comes addressed to it;
// the room's presence about the user itself is not held.
func TestRoomPresenceHeld(t *testing.T) {
	s := start(t, &csi.Module{})
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	alice, bob := online(t, s, aj, "a"), online(t, s, bj, "b")
	room := "tea@conference." + testenv.Domain
	alice.SendRaw(t, `<presence to="`+room+`/alice"><x xmlns="`+muc.NS+`"/></presence>`)
	alice.Expect(t, "own occupant presence", isPresenceFrom(room+"/alice"))
	alice.SendRaw(t, `<iq type="set" id="inst" to="`+room+`"><query xmlns="`+muc.NSOwner+`"><x xmlns="jabber:x:data" type="submit"/></query></iq>`)
	alice.Expect(t, "instant room", func(el *xmpp.Element) bool { return el.Get("id") == "inst" })

	alice.SendRaw(t, inactive)
	barrier(t, alice)
	bob.SendRaw(t, `<presence to="`+room+`/bob"><x xmlns="`+muc.NS+`"/></presence>`)
	bob.Expect(t, "own occupant presence", isPresenceFrom(room+"/bob"))
	bob.SendRaw(t, `<message type="groupchat" to="`+room+`"><body>hello</body></message>`)
	alice.Expect(t, "groupchat", func(el *xmpp.Element) bool {
		if el.Local == "presence" {
			t.Fatalf("presence while inactive: %s", el)
		}
		return el.Local == "message" && el.Get("type") == "groupchat"
	})
	// Her own presence in the room (status 110) comes at once.
	alice.SendRaw(t, `<presence to="`+room+`/alice"><show>away</show></presence>`)
	alice.Expect(t, "own occupant presence", func(el *xmpp.Element) bool {
		if el.Local == "presence" && el.Get("from") != room+"/alice" {
			t.Fatalf("presence while inactive: %s", el)
		}
		return el.Local == "presence"
	})

	alice.SendRaw(t, active)
	var got []*xmpp.Element
	for _, el := range barrier(t, alice) {
		if el.Local == "presence" {
			got = append(got, el)
		}
	}
	if len(got) != 1 || got[0].Get("from") != room+"/bob" || got[0].Get("to") != alice.JID.String() {
		t.Fatalf("after <active/>: %v, want bob's occupant presence to %s", got, alice.JID)
	}
	if got[0].Child(muc.NSUser, "x") == nil {
		t.Fatalf("occupant presence without its item: %s", got[0])
	}
}

// TestFeature: <csi/> is announced after authentication (§4.1), and a
// client may say <active/> without having been inactive.
func TestFeature(t *testing.T) {
	s := start(t, &csi.Module{})
	aj := s.AddUser(t, "alice", "pw")
	f, _ := s.StartTLS(t, "127.0.0.1").Authenticate(t, "alice", "pw")
	if f.Child(csi.NS, "csi") == nil {
		t.Fatalf("features after authentication: %s", f)
	}

	c := online(t, s, aj, "a")
	c.SendRaw(t, active+inactive+inactive+active+active)
	barrier(t, c)
	s.Others(t)
}
