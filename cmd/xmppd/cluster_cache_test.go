package main

import (
	"context"
	"strings"
	"testing"

	mxmpp "mellium.im/xmpp"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of the caches kept in step across nodes.
const (
	nsRoster   = "jabber:iq:roster"
	nsBlocking = "urn:xmpp:blocking"
)

// goOnline sends available presence and waits for it to come back.
func goOnline(t *testing.T, ms *mxmpp.Session) {
	t.Helper()
	if err := ms.Send(context.Background(), xmlPresence()); err != nil {
		t.Fatal(err)
	}
	expect(t, ms, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == ms.LocalAddr().String()
	})
}

// ask sends the IQ iq (with id) and returns its answer.
func ask(t *testing.T, ms *mxmpp.Session, id, iq string) *xmpp.Element {
	t.Helper()
	sendXML(t, ms, iq)
	return expect(t, ms, func(el *xmpp.Element) bool {
		return el.Local == "iq" && el.Get("id") == id && (el.Get("type") == "result" || el.Get("type") == "error")
	})
}

// rosterGet asks for the roster (so that the session gets pushes) and
// returns the answer's version.
func rosterGet(t *testing.T, ms *mxmpp.Session, ver string) *xmpp.Element {
	t.Helper()
	r := ask(t, ms, "rg", `<iq type="get" id="rg"><query xmlns="jabber:iq:roster" ver="`+ver+`"/></iq>`)
	if r.Get("type") != "result" {
		t.Fatalf("%s: roster get: %s", ms.LocalAddr(), r)
	}
	return r
}

// pushOf returns the item of a roster push of contact's item, if el is one.
func pushOf(el *xmpp.Element, contact string) *xmpp.Element {
	if el.Local != "iq" || el.Get("type") != "set" {
		return nil
	}
	q := el.Child(nsRoster, "query")
	if q == nil {
		return nil
	}
	if it := q.Child(nsRoster, "item"); it != nil && it.Get("jid") == contact {
		return it
	}
	return nil
}

// bodyIs reports whether el is a message with body text.
func bodyIs(el *xmpp.Element, text string) bool {
	b := el.Child("", "body")
	return el.Local == "message" && el.Get("type") != "error" && b != nil && b.Text() == text
}

// upTo reads ms's stream until a message with body marker, failing if
// bad matches anything before it.
func upTo(t *testing.T, ms *mxmpp.Session, marker, what string, bad func(*xmpp.Element) bool) {
	t.Helper()
	expect(t, ms, func(el *xmpp.Element) bool {
		if bad(el) {
			t.Fatalf("%s got %s: %s", ms.LocalAddr(), what, el)
		}
		return bodyIs(el, marker)
	})
}

// TestClusterBlocking: alice has a session on each node; she blocks
// mallory through node A. Her session on node B gets the push (XEP-0191
// §3.3), and node B, where mallory is, applies the block at once: his
// message to her session there is refused, and her message to him too.
// Unblocking through A lets him through on B again.
func TestClusterBlocking(t *testing.T) {
	a, b, _ := clusterPair(t, "alice@localhost", "bob@localhost", "mallory@localhost")
	here, there := loginFor(t, a, "alice@localhost"), loginFor(t, b, "alice@localhost")
	mallory, bob := loginFor(t, b, "mallory@localhost"), loginFor(t, b, "bob@localhost")
	for _, ms := range []*mxmpp.Session{here, there, mallory, bob} {
		goOnline(t, ms)
	}
	for _, ms := range []*mxmpp.Session{here, there} {
		if r := ask(t, ms, "bl", `<iq type="get" id="bl"><blocklist xmlns="urn:xmpp:blocking"/></iq>`); r.Get("type") != "result" {
			t.Fatalf("blocklist: %s", r)
		}
	}

	if r := ask(t, here, "blk", `<iq type="set" id="blk"><block xmlns="urn:xmpp:blocking"><item jid="mallory@localhost"/></block></iq>`); r.Get("type") != "result" {
		t.Fatalf("block: %s", r)
	}
	isPush := func(kind string) func(*xmpp.Element) bool {
		return func(el *xmpp.Element) bool {
			p := el.Child(nsBlocking, kind)
			if el.Local != "iq" || el.Get("type") != "set" || p == nil {
				return false
			}
			it := p.Child(nsBlocking, "item")
			return it != nil && it.Get("jid") == "mallory@localhost"
		}
	}
	push := expect(t, there, isPush("block"))
	sendXML(t, there, `<iq type="result" id="`+xmlEscape(push.Get("id"))+`"/>`)
	// mallory is told alice is gone, from each of her resources.
	expect(t, mallory, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == there.LocalAddr().String() && el.Get("type") == "unavailable"
	})

	// mallory writes to alice's session on B: node B refuses it as if she
	// did not exist (§3.6), and she sees nothing of it.
	sendXML(t, mallory, `<message type="chat" id="m1" to="`+there.LocalAddr().String()+`"><body>let me in</body></message>`)
	r := expect(t, mallory, func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("id") == "m1" })
	if e := r.Child("", "error"); r.Get("type") != "error" || e == nil || e.Child(xmpp.NSStanzas, "service-unavailable") == nil {
		t.Fatalf("mallory's message to a blocking account: %s", r)
	}
	sendXML(t, bob, `<message type="chat" to="`+there.LocalAddr().String()+`"><body>marker 1</body></message>`)
	upTo(t, there, "marker 1", "mallory's message", func(el *xmpp.Element) bool { return bodyIs(el, "let me in") })

	// Her own message to him from node B is refused with <blocked/> (§3.7).
	sendXML(t, there, `<message type="chat" id="m2" to="mallory@localhost"><body>hello?</body></message>`)
	r = expect(t, there, func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("id") == "m2" })
	if e := r.Child("", "error"); r.Get("type") != "error" || e == nil || e.Child("urn:xmpp:blocking:errors", "blocked") == nil {
		t.Fatalf("alice's message to a JID she blocks: %s", r)
	}

	// Unblocked through A: B lets mallory through again.
	if r := ask(t, here, "ubl", `<iq type="set" id="ubl"><unblock xmlns="urn:xmpp:blocking"><item jid="mallory@localhost"/></unblock></iq>`); r.Get("type") != "result" {
		t.Fatalf("unblock: %s", r)
	}
	expect(t, there, isPush("unblock"))
	sendXML(t, mallory, `<message type="chat" to="`+there.LocalAddr().String()+`"><body>friends again</body></message>`)
	expect(t, there, func(el *xmpp.Element) bool { return bodyIs(el, "friends again") })
}

// TestClusterRoster: alice has a session on each node, both holding her
// roster. A roster set made through node A is pushed to her session on B
// with the version B then answers for; a contact removed through A gets no
// presence from her session on B; a subscription request from a contact on
// node A reaches her session on B, and her approval from B is pushed to
// her session on A and reaches the contact on A.
func TestClusterRoster(t *testing.T) {
	a, b, st := clusterPair(t, "alice@localhost", "bob@localhost")
	creds, err := xmpp.NewCredentials("pw", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(context.Background(), "carol@localhost", creds); err != nil {
		t.Fatal(err)
	}
	here, there := loginFor(t, a, "alice@localhost"), loginFor(t, b, "alice@localhost")
	bob, carol := loginFor(t, b, "bob@localhost"), loginFor(t, a, "carol@localhost")
	for _, ms := range []*mxmpp.Session{here, there, bob, carol} {
		rosterGet(t, ms, "")
		goOnline(t, ms)
	}

	// A roster set through A is pushed to her session on B, whose version
	// B answers for: no stale copy of the roster is used there.
	sendXML(t, here, `<iq type="set" id="rs"><query xmlns="jabber:iq:roster"><item jid="dave@localhost" name="Dave"><group>Friends</group></item></query></iq>`)
	var ver string
	expect(t, there, func(el *xmpp.Element) bool {
		if it := pushOf(el, "dave@localhost"); it != nil && it.Get("name") == "Dave" {
			ver = el.Child(nsRoster, "query").Get("ver")
			return true
		}
		return false
	})
	if r := rosterGet(t, there, ver); r.Child(nsRoster, "query") != nil {
		t.Errorf("roster get with the pushed version %q on node B: not empty: %s", ver, r)
	}

	// bob is removed through A: her session on B sends him no presence.
	sendXML(t, here, `<iq type="set" id="rm"><query xmlns="jabber:iq:roster"><item jid="bob@localhost" subscription="remove"/></query></iq>`)
	expect(t, there, func(el *xmpp.Element) bool {
		it := pushOf(el, "bob@localhost")
		return it != nil && it.Get("subscription") == "remove"
	})
	expect(t, bob, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == there.LocalAddr().String() && el.Get("type") == "unavailable"
	})
	sendXML(t, there, `<presence><status>not for bob</status></presence>`)
	expect(t, there, func(el *xmpp.Element) bool { // back, once broadcast
		return el.Local == "presence" && el.Get("from") == there.LocalAddr().String()
	})
	sendXML(t, there, `<message type="chat" to="bob@localhost"><body>marker 1</body></message>`)
	upTo(t, bob, "marker 1", "presence from a contact that removed him", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == there.LocalAddr().String()
	})

	// carol, on A, asks alice for her presence: the request reaches her
	// session on B too; alice approves it from B, which A pushes to her
	// session there and tells carol.
	sendXML(t, carol, `<presence type="subscribe" to="alice@localhost"/>`)
	expect(t, there, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "subscribe" && el.Get("from") == "carol@localhost"
	})
	sendXML(t, there, `<presence type="subscribed" to="carol@localhost"/>`)
	expect(t, here, func(el *xmpp.Element) bool {
		it := pushOf(el, "carol@localhost")
		return it != nil && it.Get("subscription") == "from"
	})
	expect(t, carol, func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("type") == "subscribed" && el.Get("from") == "alice@localhost"
	})

	// Directed presence from carol on A to alice's session on B.
	sendXML(t, carol, `<presence to="`+there.LocalAddr().String()+`"><status>just for you</status></presence>`)
	expect(t, there, func(el *xmpp.Element) bool {
		st := el.Child("", "status")
		return el.Local == "presence" && el.Get("from") == carol.LocalAddr().String() && st != nil && st.Text() == "just for you"
	})
}

// TestClusterArchivePrefs: node B has read alice's archiving preferences
// (it archived a message to her); she sets "never" for bob through node A,
// and bob's next message through B is not archived for her.
func TestClusterArchivePrefs(t *testing.T) {
	a, b, st := clusterPair(t, "alice@localhost", "bob@localhost", "carol@localhost")
	alice := loginFor(t, a, "alice@localhost")
	bob, carol := loginFor(t, b, "bob@localhost"), loginFor(t, b, "carol@localhost")
	for _, ms := range []*mxmpp.Session{alice, bob, carol} {
		goOnline(t, ms)
	}
	archived := func(body string) bool {
		page, err := st.QueryArchive(context.Background(), "alice@localhost", storage.ArchiveQuery{})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			if strings.Contains(string(m.Data), ">"+body+"<") {
				return true
			}
		}
		return false
	}
	sendXML(t, bob, `<message type="chat" to="alice@localhost"><body>first</body></message>`)
	expect(t, alice, func(el *xmpp.Element) bool { return bodyIs(el, "first") })
	await(t, "bob's first message in alice's archive", func() bool { return archived("first") })

	r := ask(t, alice, "p", `<iq type="set" id="p"><prefs xmlns="urn:xmpp:mam:2" default="always"><always/><never><jid>bob@localhost</jid></never></prefs></iq>`)
	if r.Get("type") != "result" {
		t.Fatalf("setting the preferences: %s", r)
	}
	sendXML(t, bob, `<message type="chat" to="alice@localhost"><body>second</body></message>`)
	sendXML(t, carol, `<message type="chat" to="alice@localhost"><body>third</body></message>`)
	expect(t, alice, func(el *xmpp.Element) bool { return bodyIs(el, "third") })
	// Node B archives in order: once carol's later message is stored,
	// bob's would be.
	await(t, "carol's message in alice's archive", func() bool { return archived("third") })
	if archived("second") {
		t.Error("node B archived bob's message after alice set 'never' for him on node A")
	}

	// alice removes her account through A, and it is registered again:
	// the new account has the default preferences on node B too.
	sendXML(t, alice, `<iq type="set" id="rm"><query xmlns="jabber:iq:register"><remove/></query></iq>`)
	streamEnds(t, alice, "not-authorized")
	creds, err := xmpp.NewCredentials("pw", 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(context.Background(), "alice@localhost", creds); err != nil {
		t.Fatal(err)
	}
	sendXML(t, bob, `<message type="chat" to="alice@localhost"><body>fourth</body></message>`)
	await(t, "bob's message in the new alice's archive", func() bool { return archived("fourth") })
}

// TestClusterPushCount: node B counts the messages for alice that enter
// there while she is away (XEP-0357 summaries); when she comes back on
// node A, node B forgets its count, and her next absence starts again
// at one there.
func TestClusterPushCount(t *testing.T) {
	a, b, _ := clusterPair(t, "alice@localhost", "bob@localhost", "app@localhost")
	app, bob := loginFor(t, b, "app@localhost"), loginFor(t, b, "bob@localhost")
	goOnline(t, bob)
	// count waits for a notification to the app server, answers it, and
	// returns its message-count.
	count := func() string {
		t.Helper()
		el := expect(t, app, func(el *xmpp.Element) bool {
			return el.Local == "iq" && el.Get("type") == "set" && el.Child("http://jabber.org/protocol/pubsub", "pubsub") != nil
		})
		sendXML(t, app, `<iq type="result" id="`+xmlEscape(el.Get("id"))+`" to="`+xmlEscape(el.Get("from"))+`"/>`)
		s := el.String()
		const field = `var="message-count"`
		i := strings.Index(s, field)
		if i < 0 {
			t.Fatalf("a notification without a count: %s", s)
		}
		v := s[i:]
		v = v[strings.Index(v, "<value>")+len("<value>"):]
		return v[:strings.Index(v, "<")]
	}
	away := func(alice *mxmpp.Session) {
		t.Helper()
		alice.Close()
		expect(t, bob, func(el *xmpp.Element) bool {
			return el.Local == "presence" && el.Get("from") == alice.LocalAddr().String() && el.Get("type") == "unavailable"
		})
	}
	msg := func(body string) {
		t.Helper()
		sendXML(t, bob, `<message type="chat" to="alice@localhost"><body>`+body+`</body></message>`)
	}

	alice := loginFor(t, a, "alice@localhost")
	r := ask(t, alice, "en", `<iq type="set" id="en"><enable xmlns="urn:xmpp:push:0" jid="`+app.LocalAddr().String()+`" node="n1"/></iq>`)
	if r.Get("type") != "result" {
		t.Fatalf("enable: %s", r)
	}
	goOnline(t, alice)
	away(alice)
	msg("one")
	if c := count(); c != "1" {
		t.Fatalf("first absence, first message: count %s", c)
	}
	msg("two")
	if c := count(); c != "2" {
		t.Fatalf("first absence, second message: count %s", c)
	}

	alice = loginFor(t, a, "alice@localhost")
	goOnline(t, alice)
	away(alice)
	msg("three")
	if c := count(); c != "1" {
		t.Errorf("second absence, first message: count %s (node B kept the first absence's)", c)
	}
}
