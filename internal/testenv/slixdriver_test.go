package testenv_test

import (
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestDriver checks the interactive slixmpp client itself: a chat message
// between two drivers, a roster get and set, and both ways to leave.
func TestDriver(t *testing.T) {
	testenv.NeedSlixmpp(t)
	s := testenv.Start(t, "sqlite")
	alice := s.StartDriver(t, s.AddUser(t, "alice", "alice pw"), "alice pw", "drv")
	bob := s.StartDriver(t, s.AddUser(t, "bob", "bob pw"), "bob pw", "drv", "--mode", "directtls", "--mech", "PLAIN")
	if alice.JID.String() != "alice@localhost/drv" || bob.JID.String() != "bob@localhost/drv" {
		t.Fatalf("bound %s and %s", alice.JID, bob.JID)
	}

	alice.Do(t, map[string]any{"cmd": "message", "to": bob.JID.String(), "body": "hello bob"})
	alice.Expect(t, "sent", nil)
	msg := bob.Expect(t, "message", func(ev testenv.DriverEvent) bool { return ev.Body == "hello bob" })
	if msg.From != alice.JID.String() || msg.Type != "chat" || msg.Delay != "" {
		t.Fatalf("bob got %+v", msg)
	}

	alice.Do(t, map[string]any{"cmd": "roster_get"})
	if res := alice.Expect(t, "roster_result", nil); res.Empty || len(res.Items) != 0 {
		t.Fatalf("new account's roster: %+v", res)
	}
	alice.Do(t, map[string]any{"cmd": "roster_set", "id": "set1", "jid": "bob@localhost", "name": "Bob", "groups": []string{"Friends"}})
	push := alice.Expect(t, "roster_push", nil)
	if push.JID != "bob@localhost" || push.Name != "Bob" || push.Subscription != "none" ||
		len(push.Groups) != 1 || push.Groups[0] != "Friends" {
		t.Fatalf("push %+v", push)
	}
	alice.Expect(t, "iq_result", func(ev testenv.DriverEvent) bool { return ev.ID == "set1" })

	alice.Do(t, map[string]any{"cmd": "quit"})
	if code := alice.Wait(t); code != 0 {
		t.Fatalf("alice exited %d", code)
	}
	bob.Do(t, map[string]any{"cmd": "abort"})
	if code := bob.Wait(t); code != 0 {
		t.Fatalf("bob exited %d", code)
	}
}
