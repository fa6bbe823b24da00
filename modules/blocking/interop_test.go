package blocking_test

import (
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// TestSlixBlocks: slixmpp, a third-party client, blocks a contact with its
// XEP-0191 plugin and reads the list back; the contact's message is
// refused with the XEP's error and his presence no longer reaches it.
func TestSlixBlocks(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		subscribeBoth(t, s, aj, bj)
		b := online(t, s, bj, "b")
		slix := s.StartDriver(t, aj, "pw", "slix")
		slix.Do(t, map[string]any{"cmd": "presence"})
		slix.Expect(t, "presence", func(ev testenv.DriverEvent) bool { return ev.From == b.JID.String() })
		b.Expect(t, "slixmpp's presence", isPresence(slix.JID.String(), ""))

		slix.Do(t, map[string]any{"cmd": "block", "jids": []string{bj.String()}})
		slix.Expect(t, "iq_result", func(testenv.DriverEvent) bool { return true })
		b.Expect(t, "slixmpp unavailable", isPresence(slix.JID.String(), "unavailable"))
		slix.Do(t, map[string]any{"cmd": "blocklist"})
		if ev := slix.Expect(t, "blocklist", func(testenv.DriverEvent) bool { return true }); ev.Text != bj.String() {
			t.Fatalf("slixmpp read the block list as %q, want %q", ev.Text, bj)
		}

		b.SendRaw(t, chat(slix.JID.String(), "blocked"))
		expectError(t, b, "message", slix.JID.String(), xmpp.ServiceUnavailable, false)
		b.SendRaw(t, `<presence><status>after</status></presence>`)
		// Then a message from slixmpp to itself: it comes after anything
		// of bob's would have.
		slix.Do(t, map[string]any{"cmd": "message", "to": slix.JID.String(), "body": "mark"})
		for {
			ev, ok := slix.Next(t, testenv.Timeout)
			if !ok {
				t.Fatal("slixmpp: no mark message")
			}
			if ev.From == b.JID.String() || ev.From == bj.String() {
				t.Fatalf("slixmpp got %s from bob after blocking him: %s", ev.Event, ev.XML)
			}
			if ev.Event == "message" && ev.Body == "mark" {
				break
			}
		}

		slix.Do(t, map[string]any{"cmd": "unblock", "jids": []string{bj.String()}})
		slix.Expect(t, "iq_result", func(testenv.DriverEvent) bool { return true })
		b.Expect(t, "slixmpp's presence again", isPresence(slix.JID.String(), ""))
	})
}
