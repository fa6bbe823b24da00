package csi_test

import (
	"fmt"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/csi"
	"github.com/xmppd/xmppd/xmpp"
)

// TestSlixInactive: slixmpp, a third-party client, says it is inactive;
// a contact's message reaches it at once, and, once it is active again,
// the first presence it gets from the contact is the latest, with a delay
// stamp it reads.
func TestSlixInactive(t *testing.T) {
	s := start(t, &csi.Module{})
	aj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "carol", "pw")
	friends(t, s, aj, cj)
	carol := online(t, s, cj, "c")
	slix := s.StartDriver(t, aj, "pw", "slix")
	slix.Do(t, map[string]any{"cmd": "presence"})
	slix.Expect(t, "presence", func(ev testenv.DriverEvent) bool { return ev.From == carol.JID.String() })

	// A message to itself comes back after the server handled <inactive/>.
	slix.Do(t, map[string]any{"cmd": "raw", "xml": inactive})
	slix.Do(t, map[string]any{"cmd": "message", "to": slix.JID.String(), "body": "inactive"})
	slix.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "inactive" })

	for i := range 5 {
		carol.SendRaw(t, fmt.Sprintf(`<presence><status>s%d</status></presence>`, i))
	}
	carol.SendRaw(t, `<message type="chat" to="`+slix.JID.String()+`"><body>now</body></message>`)
	slix.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "now" })

	slix.Do(t, map[string]any{"cmd": "raw", "xml": active})
	// Without holding, s0 to s4 would have come before "now"; held, the
	// first to come is s4.
	ev := slix.Expect(t, "presence", func(ev testenv.DriverEvent) bool { return ev.From == carol.JID.String() })
	if ev.Status != "s4" {
		t.Fatalf("first presence after <active/>: %+v, want status s4", ev)
	}
	el, err := xmpp.ParseElement([]byte(ev.XML))
	if err != nil || ev.Type != "" || ev.To != slix.JID.String() || el.Child(nsDelay, "delay") == nil {
		t.Fatalf("held presence as slixmpp read it: %s (%v)", ev.XML, err)
	}
}
