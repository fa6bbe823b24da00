package vcard_test

import (
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestSlixVCard: slixmpp, a third-party client, publishes its vCard with
// its XEP-0054 plugin; another slixmpp reads it from the account's bare
// JID, and its attempt to publish to that JID is refused.
func TestSlixVCard(t *testing.T) {
	testenv.NeedSlixmpp(t)
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")

		a := s.StartDriver(t, aj, "pw", "a")
		a.Do(t, map[string]any{"cmd": "vcard_set", "fn": "Alice Liddell", "nickname": "al"})
		if ev := a.Answer(t); ev.Event != "iq_result" {
			t.Fatalf("vcard_set: %+v", ev)
		}

		b := s.StartDriver(t, bj, "pw", "b")
		b.Do(t, map[string]any{"cmd": "vcard_get", "jid": aj.String()})
		ev := b.Answer(t)
		if ev.Event != "vcard" || ev.Name != "Alice Liddell" || ev.Text != "al" {
			t.Fatalf("bob read alice's vCard as %+v", ev)
		}

		b.Do(t, map[string]any{"cmd": "vcard_set", "fn": "Mallory", "jid": aj.String()})
		if ev := b.Answer(t); ev.Event != "iq_error" || ev.Condition != "forbidden" {
			t.Fatalf("bob's vcard_set to alice: %+v, want a forbidden iq_error", ev)
		}
		a.Do(t, map[string]any{"cmd": "vcard_get", "jid": aj.String()})
		if ev := a.Answer(t); ev.Event != "vcard" || ev.Name != "Alice Liddell" {
			t.Fatalf("alice's vCard after bob's attempt: %+v", ev)
		}
	})
}
