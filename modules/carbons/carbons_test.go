package carbons_test

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/carbons"
	"github.com/xmppd/xmppd/xmpp"
)

const nsDiscoInfo = "http://jabber.org/protocol/disco#info"

var seq atomic.Int64

func nextID() string { return fmt.Sprintf("c%d", seq.Add(1)) }

// online signs in a resource of bare and sends initial presence with the
// given priority, and waits for the server to echo it.
func online(t *testing.T, s *testenv.Server, bare jid.JID, resource string, priority int) *testenv.Client {
	t.Helper()
	c := s.Dial(t, bare, "pw", resource)
	c.SendRaw(t, fmt.Sprintf(`<presence><priority>%d</priority></presence>`, priority))
	c.Expect(t, "own presence", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == c.JID.String()
	})
	return c
}

// enable turns carbons on (or off) for c, with no 'to', as clients do.
func enable(t *testing.T, c *testenv.Client, on bool) {
	t.Helper()
	what := "enable"
	if !on {
		what = "disable"
	}
	res := c.IQ(t, "set", "", `<`+what+` xmlns="`+carbons.NS+`"/>`)
	if res.Get("type") != "result" {
		t.Fatalf("%s: %s", what, res)
	}
	// §4: the account answers, from its bare JID.
	if res.Get("from") != c.JID.Bare().String() {
		t.Fatalf("%s answered from %q, want %q", what, res.Get("from"), c.JID.Bare())
	}
}

// nextMessage returns the next message c receives, skipping presence and
// IQs: a message that should not have come fails the next expectation.
func nextMessage(t *testing.T, c *testenv.Client, what string) *xmpp.Element {
	t.Helper()
	return c.Expect(t, what, func(el *xmpp.Element) bool { return el.Local == "message" })
}

// expectCarbon checks that the next message c gets is a carbon of kind
// ("sent" or "received") of a message from → to with body, and returns
// the forwarded message.
func expectCarbon(t *testing.T, c *testenv.Client, kind, from, to, body string) *xmpp.Element {
	t.Helper()
	el := nextMessage(t, c, kind+" carbon of "+body)
	bare := c.JID.Bare().String()
	// §7, §8: from the bare JID, to the resource; §11: a client ignores
	// any other.
	if el.Get("from") != bare || el.Get("to") != c.JID.String() {
		t.Fatalf("%s: carbon addressed from %q to %q, want %q to %q: %s", c.JID, el.Get("from"), el.Get("to"), bare, c.JID, el)
	}
	wrap := el.Child(carbons.NS, kind)
	if wrap == nil {
		t.Fatalf("%s: want a %s carbon of %q, got %s", c.JID, kind, body, el)
	}
	fwd := wrap.Child(carbons.NSForward, "forwarded")
	if fwd == nil {
		t.Fatalf("%s: carbon without <forwarded/>: %s", c.JID, el)
	}
	inner := fwd.Child(xmpp.NSClient, "message")
	if inner == nil {
		t.Fatalf("%s: carbon forwards no message: %s", c.JID, el)
	}
	if inner.Get("from") != from || inner.Get("to") != to {
		t.Fatalf("%s: forwarded message from %q to %q, want %q to %q", c.JID, inner.Get("from"), inner.Get("to"), from, to)
	}
	if b := inner.Child(xmpp.NSClient, "body"); body != "" && (b == nil || b.Text() != body) {
		t.Fatalf("%s: forwarded message %s, want body %q", c.JID, inner, body)
	}
	// §7, §8: the wrapper keeps the original's type.
	if el.Get("type") != inner.Get("type") {
		t.Fatalf("%s: carbon of type %q for a message of type %q", c.JID, el.Get("type"), inner.Get("type"))
	}
	return inner
}

// expectDirect checks that the next message c gets is the message itself
// with body, and returns it.
func expectDirect(t *testing.T, c *testenv.Client, from, body string) *xmpp.Element {
	t.Helper()
	el := nextMessage(t, c, "message "+body)
	b := el.Child(xmpp.NSClient, "body")
	if el.Get("from") != from || b == nil || b.Text() != body {
		t.Fatalf("%s: want %q from %s, got %s", c.JID, body, from, el)
	}
	return el
}

// quiet checks that no message reaches c before the answer to a ping it
// sends now. What the server queued for c before it reads the ping is
// written before the answer, so anything sent to c earlier has come.
func quiet(t *testing.T, c *testenv.Client, what string) {
	t.Helper()
	id := nextID()
	c.SendRaw(t, `<iq type="get" id="`+id+`" to="`+testenv.Domain+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
	c.Expect(t, "ping answer", func(el *xmpp.Element) bool {
		if el.Local == "message" {
			t.Fatalf("%s: %s got %s", what, c.JID, el)
		}
		return el.Local == "iq" && el.Get("id") == id
	})
}

func chat(to, body, extra string) string {
	return `<message type="chat" to="` + to + `"><body>` + body + `</body>` + extra + `</message>`
}

// TestCarbons: alice has three resources, a1 and a2 with carbons and a3
// without; bob writes to her and she to him.
func TestCarbons(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	// a1 is alice's highest priority: a message to her bare JID goes to
	// it alone.
	a1 := online(t, s, aj, "a1", 5)
	a2 := online(t, s, aj, "a2", 0)
	a3 := online(t, s, aj, "a3", 0)
	b := online(t, s, bj, "b", 0)
	alice, bob := aj.String(), bj.String()

	// §3: the server and the account advertise carbons.
	info := a1.IQ(t, "get", testenv.Domain, `<query xmlns="`+nsDiscoInfo+`"/>`)
	if !hasFeature(info, carbons.NS) || !hasFeature(info, carbons.NSRules) {
		t.Fatalf("server features lack %s and %s: %s", carbons.NS, carbons.NSRules, info)
	}
	if info := a1.IQ(t, "get", alice, `<query xmlns="`+nsDiscoInfo+`"/>`); !hasFeature(info, carbons.NS) {
		t.Fatalf("account features lack %s: %s", carbons.NS, info)
	}

	// §4: enable with no 'to', and with the own bare JID; twice is no
	// error (§10.1).
	enable(t, a1, true)
	res := a2.IQ(t, "set", alice, `<enable xmlns="`+carbons.NS+`"/>`)
	if res.Get("type") != "result" {
		t.Fatalf("enable to own bare JID: %s", res)
	}
	enable(t, a2, true)
	// §4.1: nobody turns on someone else's carbons.
	if res := b.IQ(t, "set", alice, `<enable xmlns="`+carbons.NS+`"/>`); res.Child("", "error") == nil ||
		res.Child("", "error").Child(xmpp.NSStanzas, "not-allowed") == nil {
		t.Fatalf("bob enabling alice's carbons: %s", res)
	}

	t.Run("received to full JID", func(t *testing.T) {
		b.SendRaw(t, chat(a1.JID.String(), "to a1", ""))
		expectDirect(t, a1, b.JID.String(), "to a1")
		expectCarbon(t, a2, "received", b.JID.String(), a1.JID.String(), "to a1")
		quiet(t, a3, "a3 has no carbons")
		quiet(t, a1, "a1 got the message itself")
		// To a2 (enabled), a1 gets the copy.
		b.SendRaw(t, chat(a2.JID.String(), "to a2", ""))
		expectDirect(t, a2, b.JID.String(), "to a2")
		expectCarbon(t, a1, "received", b.JID.String(), a2.JID.String(), "to a2")
		quiet(t, a3, "a3 has no carbons")
	})

	t.Run("received to bare JID", func(t *testing.T) {
		// RFC 6121 §8.5.2.1.1: a1 alone has the highest priority; a2 gets
		// a copy, a3 nothing.
		b.SendRaw(t, chat(alice, "to alice", ""))
		expectDirect(t, a1, b.JID.String(), "to alice")
		expectCarbon(t, a2, "received", b.JID.String(), alice, "to alice")
		quiet(t, a3, "a3 has no carbons")
		quiet(t, a1, "a1 got the message itself")
	})

	t.Run("sent", func(t *testing.T) {
		a1.SendRaw(t, chat(bob, "from a1", ""))
		expectDirect(t, b, a1.JID.String(), "from a1")
		expectCarbon(t, a2, "sent", a1.JID.String(), bob, "from a1")
		quiet(t, a1, "no copy to the sender")
		quiet(t, a3, "a3 has no carbons")
		// §8: also when the sending client has no carbons itself.
		a3.SendRaw(t, chat(b.JID.String(), "from a3", ""))
		expectDirect(t, b, a3.JID.String(), "from a3")
		expectCarbon(t, a1, "sent", a3.JID.String(), b.JID.String(), "from a3")
		expectCarbon(t, a2, "sent", a3.JID.String(), b.JID.String(), "from a3")
		quiet(t, a3, "no copy to the sender")
	})

	t.Run("to oneself", func(t *testing.T) {
		// a1 writes to a3: a3 gets it, a2 one copy (sent), not two.
		a1.SendRaw(t, chat(a3.JID.String(), "note to self", ""))
		expectDirect(t, a3, a1.JID.String(), "note to self")
		expectCarbon(t, a2, "sent", a1.JID.String(), a3.JID.String(), "note to self")
		quiet(t, a2, "one copy of a message to oneself")
		quiet(t, a1, "no copy to the sender")
	})

	t.Run("private and no-copy", func(t *testing.T) {
		private := `<private xmlns="` + carbons.NS + `"/>`
		noCopy := `<no-copy xmlns="` + carbons.NSHints + `"/>`
		// §9: both, as the XEP has clients send them.
		a1.SendRaw(t, chat(bob, "private out", private+noCopy))
		got := expectDirect(t, b, a1.JID.String(), "private out")
		// The receiving server removes <private/> (§9); the hint stays.
		if got.Child(carbons.NS, "private") != nil || got.Child(carbons.NSHints, "no-copy") == nil {
			t.Fatalf("delivered private message: %s", got)
		}
		b.SendRaw(t, chat(a1.JID.String(), "private in", private))
		got = expectDirect(t, a1, b.JID.String(), "private in")
		if got.Child(carbons.NS, "private") != nil {
			t.Fatalf("<private/> not removed: %s", got)
		}
		// XEP-0334 §4.3: the hint alone.
		a1.SendRaw(t, chat(bob, "no-copy out", noCopy))
		expectDirect(t, b, a1.JID.String(), "no-copy out")
		b.SendRaw(t, chat(a1.JID.String(), "no-copy in", noCopy))
		expectDirect(t, a1, b.JID.String(), "no-copy in")
		quiet(t, a2, "no copies of private messages")
	})

	t.Run("eligible messages", func(t *testing.T) {
		// §6.1: a chat state is a payload of instant messaging, copied
		// whatever the type; a normal message with neither body nor such
		// a payload is not copied.
		a1.SendRaw(t, `<message to="`+bob+`" id="cs1"><composing xmlns="`+carbons.NSChatStates+`"/></message>`)
		el := nextMessage(t, b, "chat state")
		if el.Child(carbons.NSChatStates, "composing") == nil {
			t.Fatalf("bob got %s, want the chat state", el)
		}
		inner := expectCarbon(t, a2, "sent", a1.JID.String(), bob, "")
		if inner.Child(carbons.NSChatStates, "composing") == nil || inner.Get("id") != "cs1" {
			t.Fatalf("carbon of the chat state: %s", inner)
		}
		a1.SendRaw(t, `<message to="`+bob+`"><x xmlns="urn:example:custom"/></message>`)
		nextMessage(t, b, "custom payload")
		// A headline with a body is not instant messaging.
		b.SendRaw(t, `<message type="headline" to="`+a1.JID.String()+`"><body>news</body></message>`)
		expectDirect(t, a1, b.JID.String(), "news")
		quiet(t, a2, "not eligible")
	})

	t.Run("disable", func(t *testing.T) {
		enable(t, a2, false)
		enable(t, a2, false) // §10.1: again is no error
		b.SendRaw(t, chat(a1.JID.String(), "after disable", ""))
		expectDirect(t, a1, b.JID.String(), "after disable")
		a1.SendRaw(t, chat(bob, "sent after disable", ""))
		expectDirect(t, b, a1.JID.String(), "sent after disable")
		quiet(t, a2, "carbons disabled")
		// a1 still has them.
		a3.SendRaw(t, chat(bob, "a1 still copied", ""))
		expectCarbon(t, a1, "sent", a3.JID.String(), bob, "a1 still copied")
	})
}

func hasFeature(info *xmpp.Element, feature string) bool {
	q := info.Child(nsDiscoInfo, "query")
	if q == nil {
		return false
	}
	return slices.ContainsFunc(q.Elements(), func(f *xmpp.Element) bool {
		return f.Local == "feature" && f.Get("var") == feature
	})
}

// TestCarbonsToOfflineStorage: a message that nobody gets now goes to
// offline storage; a session with carbons that has not sent presence yet
// gets it from there, not as a copy too.
func TestCarbonsToOfflineStorage(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	a := s.Dial(t, aj, "pw", "a")
	enable(t, a, true)
	b := online(t, s, bj, "b", 0)
	b.SendRaw(t, chat(aj.String(), "while away", ""))
	quiet(t, b, "stored, not bounced")
	quiet(t, a, "no copy before initial presence")
	a.SendRaw(t, `<presence/>`)
	expectDirect(t, a, b.JID.String(), "while away")
	quiet(t, a, "the message once")
}

// TestCarbonsHibernated: a session with carbons whose connection breaks
// keeps the copies for its client (XEP-0198), and has carbons on after it
// resumes.
func TestCarbonsHibernated(t *testing.T) {
	hibernated := make(chan *xmpp.Session, 1)
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.Modules = append(defaultModules(srv), sessionWatch{hibernated})
	})
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	phone := s.DialSM(t, aj, "pw", "phone", "", 0)
	id := phone.Enable()
	phone.Send(`<iq type="set" id="carbons"><enable xmlns="` + carbons.NS + `"/></iq>`)
	phone.Expect("carbons enabled", func(el *xmpp.Element) bool { return el.Get("id") == "carbons" && el.Get("type") == "result" })
	phone.Send(`<presence/>`)
	phone.Expect("own presence", func(el *xmpp.Element) bool { return el.Local == "presence" })
	desk := online(t, s, aj, "desk", 1)
	b := online(t, s, bj, "b", 0)

	phone.Cut()
	select {
	case sess := <-hibernated:
		if !sess.JID().Equal(phone.JID) {
			t.Fatalf("%s hibernated, want %s", sess.JID(), phone.JID)
		}
	case <-time.After(testenv.Timeout):
		t.Fatal("the session did not hibernate")
	}
	// While it hibernates: a message to alice goes to desk (higher
	// priority), and the copy waits for the phone.
	b.SendRaw(t, chat(aj.String(), "while asleep", ""))
	expectDirect(t, desk, b.JID.String(), "while asleep")

	resumed := s.DialSM(t, aj, "pw", "", id, 0)
	if resumed.Answer == nil || resumed.Answer.Local != "resumed" {
		t.Fatalf("resume: %v", resumed.Answer)
	}
	resumed.Expect("the copy made while hibernated", isCarbonOf("received", "while asleep"))
	// Carbons are still on: what desk sends is copied at once.
	desk.SendRaw(t, chat(bj.String(), "after resume", ""))
	resumed.Expect("a copy after resumption", isCarbonOf("sent", "after resume"))
}

// isCarbonOf matches a carbon of kind whose forwarded message has body.
func isCarbonOf(kind, body string) func(*xmpp.Element) bool {
	return func(el *xmpp.Element) bool {
		inner := el.Child(carbons.NS, kind)
		if el.Local != "message" || inner == nil {
			return false
		}
		m := inner.Child(carbons.NSForward, "forwarded")
		if m != nil {
			m = m.Child(xmpp.NSClient, "message")
		}
		b := (*xmpp.Element)(nil)
		if m != nil {
			b = m.Child(xmpp.NSClient, "body")
		}
		return b != nil && strings.TrimSpace(b.Text()) == body
	}
}

// TestCarbonsToggleCount: disabling twice counts once, so that the
// module's shortcut for a server where nobody has carbons on (a count of
// zero) does not turn off a session that has them.
func TestCarbonsToggleCount(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	a1 := online(t, s, aj, "a1", 0)
	a2 := online(t, s, aj, "a2", 0)
	b := online(t, s, bj, "b", 0)

	enable(t, a1, true)
	enable(t, a2, true)
	enable(t, a2, true)
	enable(t, a1, false)
	enable(t, a1, false)
	b.SendRaw(t, chat(a1.JID.String(), "copied", ""))
	expectDirect(t, a1, b.JID.String(), "copied")
	expectCarbon(t, a2, "received", b.JID.String(), a1.JID.String(), "copied")
	b.SendRaw(t, chat(a2.JID.String(), "not copied", ""))
	expectDirect(t, a2, b.JID.String(), "not copied")
	quiet(t, a1, "a1 disabled carbons")
}
