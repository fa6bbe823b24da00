package roster_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/modules/offline"
	"github.com/xmppd/xmppd/roster"
	"github.com/xmppd/xmppd/xmpp"
)

// TestQuotasChangedAtRunTime: the roster and offline limits a reload sets
// apply to the next item and message, on a server that is running.
func TestQuotasChangedAtRunTime(t *testing.T) {
	var rm *roster.Module
	var om *offline.Module
	s := testenv.Start(t, "sqlite", func(srv *xmpp.Server) {
		srv.Modules = modules.Default(modules.Options{Store: srv.Store, MaxRosterItems: 1, MaxOfflineMessages: 1})
		for _, m := range srv.Modules {
			switch m := m.(type) {
			case *roster.Module:
				rm = m
			case *offline.Module:
				om = m
			}
		}
	})
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	a := online(t, s, aj, "a")
	add := func(i int, want string) {
		t.Helper()
		el := a.iq(t, "set", fmt.Sprintf(`<query xmlns="jabber:iq:roster"><item jid="c%d@localhost"/></query>`, i))
		switch {
		case want == "" && el.Get("type") != "result":
			t.Fatalf("item %d refused: %s", i, el)
		case want != "" && (el.Get("type") != "error" || !strings.Contains(el.String(), want)):
			t.Fatalf("item %d: %s, want an error saying %q", i, el, want)
		}
	}
	add(0, "")
	add(1, "at most 1")
	rm.SetMaxItems(2)
	add(1, "")
	add(2, "at most 2")

	// send sends a message to offline bob and a ping after it: the
	// message's error, if any, comes before the ping's answer.
	send := func(i int) (bounced string) {
		t.Helper()
		a.SendRaw(t, fmt.Sprintf(`<message id="o%d" type="chat" to="%s"><body>m%d</body></message>`, i, bj, i))
		a.SendRaw(t, fmt.Sprintf(`<iq type="get" id="p%d"><ping xmlns="urn:xmpp:ping"/></iq>`, i))
		a.Expect(t, "ping answer", func(el *xmpp.Element) bool {
			if el.Get("id") == fmt.Sprintf("o%d", i) && el.Get("type") == "error" {
				bounced = el.String()
			}
			return el.Get("id") == fmt.Sprintf("p%d", i)
		})
		return bounced
	}
	if b := send(0); b != "" {
		t.Fatalf("first offline message bounced: %s", b)
	}
	if b := send(1); !strings.Contains(b, "1 messages") {
		t.Fatalf("second offline message with a limit of 1: %q", b)
	}
	om.SetLimits(2, 0)
	if b := send(2); b != "" {
		t.Fatalf("offline message after the limit was raised to 2 bounced: %s", b)
	}
	if b := send(3); !strings.Contains(b, "2 messages") {
		t.Fatalf("third offline message with a limit of 2: %q", b)
	}
}
