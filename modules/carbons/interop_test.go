package carbons_test

import (
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/carbons"
	"github.com/xmppd/xmppd/xmpp"
)

// TestSlixCarbons: slixmpp, a third-party client, turns carbons on and
// gets a copy of a message to its account's other resource; what it sends
// is copied to that resource as slixmpp wrote it. The driver sends only
// what the test tells it to; carbons go as raw XML.
func TestSlixCarbons(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	slix := s.StartDriver(t, aj, "pw", "slix")
	slix.Do(t, map[string]any{"cmd": "raw", "xml": `<iq type="set" id="carbons"><enable xmlns="` + carbons.NS + `"/></iq>`})
	// The server handles a client's stanzas in order: once slixmpp has its
	// message to itself, its carbons are on.
	slix.Do(t, map[string]any{"cmd": "message", "to": slix.JID.String(), "body": "barrier"})
	slix.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "barrier" })

	a := online(t, s, aj, "go", 0)
	enable(t, a, true)
	b := online(t, s, bj, "b", 0)

	b.SendRaw(t, chat(a.JID.String(), "to go", ""))
	expectDirect(t, a, b.JID.String(), "to go")
	ev := slix.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.From == aj.String() })
	el, err := xmpp.ParseElement([]byte(ev.XML))
	if err != nil {
		t.Fatalf("slixmpp's copy %q: %v", ev.XML, err)
	}
	rcv := el.Child(carbons.NS, "received")
	if ev.To != slix.JID.String() || rcv == nil {
		t.Fatalf("slixmpp got %s, want a received carbon to %s", ev.XML, slix.JID)
	}
	inner := rcv.Child(carbons.NSForward, "forwarded").Child(xmpp.NSClient, "message")
	if inner.Get("from") != b.JID.String() || inner.Child(xmpp.NSClient, "body").Text() != "to go" {
		t.Fatalf("forwarded message: %s", inner)
	}

	slix.Do(t, map[string]any{"cmd": "message", "to": bj.String(), "body": "from slix", "id": "s1"})
	expectDirect(t, b, slix.JID.String(), "from slix")
	if got := expectCarbon(t, a, "sent", slix.JID.String(), bj.String(), "from slix"); got.Get("id") != "s1" {
		t.Fatalf("sent carbon of slixmpp's message: %s", got)
	}
}
