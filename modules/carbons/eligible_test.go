package carbons

import (
	"testing"

	"github.com/xmppd/xmppd/xmpp"
)

// TestEligible is §6.1 case by case, for messages a client sends (out)
// and messages to the account (in).
func TestEligible(t *testing.T) {
	cases := []struct {
		name    string
		stanza  string
		out, in bool
	}{
		{"chat", `<message type="chat"><body>hi</body></message>`, true, true},
		{"chat without body", `<message type="chat"/>`, true, true},
		{"normal with body", `<message><body>hi</body></message>`, true, true},
		{"normal typed", `<message type="normal"><body>hi</body></message>`, true, true},
		{"normal without body", `<message><subject>s</subject></message>`, false, false},
		{"chat state", `<message><active xmlns="http://jabber.org/protocol/chatstates"/></message>`, true, true},
		{"receipt", `<message><received xmlns="urn:xmpp:receipts" id="x"/></message>`, true, true},
		{"chat marker", `<message><displayed xmlns="urn:xmpp:chat-markers:0" id="x"/></message>`, true, true},
		{"headline", `<message type="headline"><body>news</body></message>`, false, false},
		{"groupchat", `<message type="groupchat"><body>all</body></message>`, false, false},
		{"error", `<message type="error"><body>hi</body><error type="cancel"/></message>`, false, false},
		{"private", `<message type="chat"><body>hi</body><private xmlns="urn:xmpp:carbons:2"/></message>`, false, false},
		{"no-copy", `<message type="chat"><body>hi</body><no-copy xmlns="urn:xmpp:hints"/></message>`, false, false},
		{"no-permanent-store", `<message type="chat"><body>hi</body><no-permanent-store xmlns="urn:xmpp:hints"/></message>`, true, true},
		{"a carbon", `<message type="chat"><received xmlns="urn:xmpp:carbons:2"><forwarded xmlns="urn:xmpp:forward:0"/></received></message>`, false, false},
		{"MUC private message", `<message type="chat"><body>psst</body><x xmlns="http://jabber.org/protocol/muc#user"/></message>`, true, false},
		{"mediated invitation", `<message><x xmlns="http://jabber.org/protocol/muc#user"><invite from="a@b"/></x></message>`, true, true},
		{"direct invitation", `<message><x xmlns="jabber:x:conference" jid="room@conference.b"/></message>`, true, true},
	}
	for _, c := range cases {
		st, err := xmpp.ParseStanza([]byte(c.stanza))
		if err != nil {
			t.Fatal(err)
		}
		if got := eligible(st, false); got != c.out {
			t.Errorf("%s sent: eligible %v, want %v", c.name, got, c.out)
		}
		if got := eligible(st, true); got != c.in {
			t.Errorf("%s received: eligible %v, want %v", c.name, got, c.in)
		}
	}
}
