package pep

import (
	"maps"
	"testing"

	"github.com/xmppd/xmppd/xmpp"
)

// A change told to the other nodes reads back as it was sent, through the
// bytes the bus carries: the owner always, and with a notification the
// node's name, access model and affiliations (which pick its recipients
// there) and the message itself.
func TestChangeOp(t *testing.T) {
	n := &node{name: "urn:xmpp:avatar:metadata", cfg: nodeConfig{access: AccessWhitelist},
		affs: map[string]string{"bob@localhost": "member", "eve@localhost": "outcast"}}
	msg := xmpp.NewElement(xmpp.NSClient, "message", "from", "alice@localhost", "type", "headline", "id", "m1").
		Add(xmpp.NewElement(NSEvent, "event").Add(xmpp.NewElement(NSEvent, "items", "node", n.name).
			Add(xmpp.NewElement(NSEvent, "item", "id", "i1"))))
	for _, c := range []struct {
		name string
		n    *node
		msg  *xmpp.Element
	}{
		{"no notification", nil, nil},
		{"a notification", n, msg},
		{"no affiliations", &node{name: "x", cfg: nodeConfig{access: AccessPresence}}, msg},
	} {
		wire, err := xmpp.ParseStanza(changeOp("alice@localhost", c.n, c.msg).Bytes(xmpp.NSClient))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if wire.Space != xmpp.NSCluster || wire.Local != opChanged {
			t.Fatalf("%s: the operation is {%s}%s", c.name, wire.Space, wire.Local)
		}
		owner, got, gotMsg := readChangeOp(wire)
		if owner != "alice@localhost" {
			t.Errorf("%s: owner %q", c.name, owner)
		}
		if c.msg == nil {
			if got != nil || gotMsg != nil {
				t.Errorf("%s: read a notification: %v %v", c.name, got, gotMsg)
			}
			continue
		}
		if got == nil || got.name != c.n.name || got.cfg.access != c.n.cfg.access || !maps.Equal(got.affs, c.n.affs) {
			t.Errorf("%s: node %+v, want %+v", c.name, got, c.n)
		}
		if gotMsg == nil || gotMsg.String() != c.msg.String() {
			t.Errorf("%s: message %v, want %v", c.name, gotMsg, c.msg)
		}
	}
	if owner, _, _ := readChangeOp(xmpp.NewElement(xmpp.NSCluster, opChanged)); owner != "" {
		t.Errorf("an operation without an owner read as %q's", owner)
	}
}
