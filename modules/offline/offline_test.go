package offline_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// TestOfflineTotalLimit: with a server-wide limit of 4,000 bytes and
// messages of a little over 1,000, three messages to offline accounts are
// stored and delivered at login, in order; the ones past the limit, to the
// same account or another, come back to the sender with
// <service-unavailable/> and a text saying why, and are never delivered.
// Delivering makes room again.
func TestOfflineTotalLimit(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend, func(srv *xmpp.Server) {
			srv.Modules = modules.Default(modules.Options{Store: srv.Store, MaxOfflineBytes: 4000})
		})
		aj, bj, cj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw"), s.AddUser(t, "carol", "pw")
		a := s.Dial(t, aj, "pw", "a")
		a.SendRaw(t, `<presence/>`)
		body := strings.Repeat("x", 1000)
		send := func(id, to string) {
			a.SendRaw(t, fmt.Sprintf(`<message id="%s" type="chat" to="%s"><body>%s %s</body></message>`, id, to, id, body))
		}
		for i := range 5 {
			send(fmt.Sprintf("m%d", i), bj.String())
		}
		send("c0", cj.String())
		for _, id := range []string{"m3", "m4", "c0"} {
			el := a.Expect(t, "bounce of "+id, func(el *xmpp.Element) bool { return el.Get("id") == id })
			e := el.Child("", "error")
			if el.Get("type") != "error" || e == nil || e.Child(xmpp.NSStanzas, "service-unavailable") == nil {
				t.Fatalf("message %s past the total: got %s, want a service-unavailable error", id, el)
			}
			if txt := e.Child(xmpp.NSStanzas, "text"); txt == nil || !strings.Contains(txt.Text(), "server's offline storage is full") {
				t.Errorf("bounce of %s without a text saying why: %s", id, el)
			}
		}
		u, err := s.Store.OfflineUsage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if u.Messages != 3 || u.Bytes > 4000 {
			t.Errorf("OfflineUsage = %+v, want 3 messages in at most 4000 bytes", u)
		}

		b := s.Dial(t, bj, "pw", "b")
		b.SendRaw(t, `<presence/>`)
		for i := range 3 {
			want := fmt.Sprintf("m%d %s", i, body)
			el := b.Expect(t, fmt.Sprintf("stored message m%d", i), func(el *xmpp.Element) bool { return el.Local == "message" })
			if bd := el.Child("", "body"); bd == nil || bd.Text() != want {
				t.Fatalf("message %d delivered at login: %.80s, want body m%d", i, el, i)
			}
		}
		// Nothing else: the bounced messages were not kept. The ping is
		// answered after bob's presence is handled, delivery and the
		// deletion of what was delivered included (the core runs
		// OnAvailable in the session's read loop).
		id := "barrier"
		b.SendRaw(t, `<iq type="get" id="`+id+`"><ping xmlns="urn:xmpp:ping"/></iq>`)
		b.Expect(t, "ping answer", func(el *xmpp.Element) bool {
			if el.Local == "message" {
				t.Fatalf("a bounced message was delivered: %.80s", el)
			}
			return el.Get("id") == id
		})
		// Delivered messages are deleted, which makes room for carol's.
		if u, err := s.Store.OfflineUsage(t.Context()); err != nil || u != (storage.OfflineUsage{}) {
			t.Fatalf("OfflineUsage after delivery = %+v, %v; want none", u, err)
		}
		send("c1", cj.String())
		c := s.Dial(t, cj, "pw", "c")
		c.SendRaw(t, `<presence/>`)
		el := c.Expect(t, "message stored after room was made", func(el *xmpp.Element) bool { return el.Local == "message" })
		if bd := el.Child("", "body"); bd == nil || !strings.HasPrefix(bd.Text(), "c1 ") {
			t.Fatalf("carol got %.80s, want c1", el)
		}
		s.Others(t)
	})
}

// TestStoreHint: a message without body or subject is dropped for an
// offline account, unless it carries XEP-0334's <store/>: then it waits
// for the account's next available presence (the admin API's stored app
// events).
func TestStoreHint(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	a := s.Dial(t, aj, "pw", "a")
	a.SendRaw(t, `<presence/>`)
	a.SendRaw(t, `<message id="plain" to="`+bj.String()+`"><x xmlns="urn:example:app">dropped</x></message>`)
	a.SendRaw(t, `<message id="hinted" to="`+bj.String()+`"><x xmlns="urn:example:app">kept</x><store xmlns="urn:xmpp:hints"/></message>`)
	// A round trip: alice's messages have been handled.
	a.IQ(t, "get", "", `<ping xmlns="urn:xmpp:ping"/>`)
	b := s.Dial(t, bj, "pw", "b")
	b.SendRaw(t, `<presence/>`)
	el := b.Expect(t, "a stored message", func(el *xmpp.Element) bool { return el.Local == "message" })
	if el.Get("id") != "hinted" {
		t.Fatalf("delivered at login: %s, want only the message with <store/>", el)
	}
}
