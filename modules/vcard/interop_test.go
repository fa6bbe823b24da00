package vcard_test

import (
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
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

// TestSlixAvatarHash: slixmpp publishes a vCard with a PHOTO through its
// XEP-0054 plugin, as a client of XEP-0153 does; its contact, another
// slixmpp, gets its presence again with the photo's SHA-1 in
// <x xmlns='vcard-temp:x:update'/>, which the client never sent.
func TestSlixAvatarHash(t *testing.T) {
	testenv.NeedSlixmpp(t)
	const png = "iVBORw0KGgoAAAANSUhEUg=="
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
		subscribeBoth(t, s, aj, bj)
		hash := sha1Hex(t, png)

		b := s.StartDriver(t, bj, "pw", "b")
		b.Do(t, map[string]any{"cmd": "presence"})
		a := s.StartDriver(t, aj, "pw", "a")
		a.Do(t, map[string]any{"cmd": "presence"})
		fromA := func(ev testenv.DriverEvent) bool { return ev.From == a.JID.String() && ev.Type == "" }
		if got := driverPhoto(t, b.Expect(t, "presence", fromA)); got != "" {
			t.Fatalf("alice's presence before any photo has %q", got)
		}

		a.Do(t, map[string]any{"cmd": "vcard_set", "fn": "Alice", "photo": png, "photo_type": "image/png"})
		a.Expect(t, "iq_result", nil)
		if got := driverPhoto(t, b.Expect(t, "presence", fromA)); got != hash {
			t.Fatalf("alice's presence after her photo has %q, want %q", got, hash)
		}
	})
}

// driverPhoto is the avatar hash in a presence the driver reported; it
// fails unless there is exactly one update element with a <photo/>.
func driverPhoto(t *testing.T, ev testenv.DriverEvent) string {
	t.Helper()
	p, err := xmpp.ParseElement([]byte(ev.XML))
	if err != nil {
		t.Fatalf("presence %q: %v", ev.XML, err)
	}
	hash, n := photo(p)
	if n != 1 || hash == "-" {
		t.Fatalf("presence with %d update elements (photo %q): %s", n, hash, ev.XML)
	}
	return hash
}
