package roster_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
)

// The tests in this file drive slixmpp, a third-party client, through
// testenv's interactive driver: the server must be understood by a real
// client, not only by our hand-written one. The driver sends nothing on its
// own, so every stanza below is one the test asked for.

// slixLogin starts a slixmpp client for bare/resource and fetches the
// roster, so that roster pushes come to it (RFC 6121 §2.1.6).
func slixLogin(t *testing.T, s *testenv.Server, bare jid.JID, password, resource string) *testenv.Driver {
	t.Helper()
	d := s.StartDriver(t, bare, password, resource)
	slixRoster(t, d, "login")
	return d
}

// slixAvailable sends initial presence with status and waits for the
// server's copy to the sender (RFC 6121 §4.2.2): after it, the session is
// available.
func slixAvailable(t *testing.T, d *testenv.Driver, status string) {
	t.Helper()
	d.Do(t, map[string]any{"cmd": "presence", "status": status})
	d.Expect(t, "presence", slixPresence(d.JID.String(), ""))
}

// slixRoster gets d's roster without a ver attribute.
func slixRoster(t *testing.T, d *testenv.Driver, id string) testenv.DriverEvent {
	t.Helper()
	d.Do(t, map[string]any{"cmd": "roster_get", "id": id})
	return d.Expect(t, "roster_result", func(ev testenv.DriverEvent) bool { return ev.ID == id })
}

// slixRosterVer gets d's roster with ver, sent even when empty (RFC 6121
// §2.6.2).
func slixRosterVer(t *testing.T, d *testenv.Driver, id, ver string) testenv.DriverEvent {
	t.Helper()
	d.Do(t, map[string]any{"cmd": "roster_get", "id": id, "ver": ver})
	return d.Expect(t, "roster_result", func(ev testenv.DriverEvent) bool { return ev.ID == id })
}

func slixPresence(from, typ string) func(testenv.DriverEvent) bool {
	return func(ev testenv.DriverEvent) bool { return ev.From == from && ev.Type == typ }
}

// slixPush matches a roster push of contact with the given subscription and
// ask; it fails t if the push does not come from the account itself or the
// server (RFC 6121 §2.1.6) or has no version (the server announces roster
// versioning, §2.6.3).
func slixPush(t *testing.T, d *testenv.Driver, contact, sub, ask string) func(testenv.DriverEvent) bool {
	return func(ev testenv.DriverEvent) bool {
		if ev.JID != contact {
			return false
		}
		if ev.From != "" && ev.From != d.JID.Bare().String() {
			t.Errorf("roster push from %q to %s", ev.From, d.JID)
		}
		if !ev.HasVer || ev.Ver == "" {
			t.Errorf("roster push without a version: %s", ev.XML)
		}
		return ev.Subscription == sub && ev.Ask == ask
	}
}

// slixItem returns the item for contact in a roster result, or nil.
func slixItem(res testenv.DriverEvent, contact string) *testenv.DriverItem {
	for i := range res.Items {
		if res.Items[i].JID == contact {
			return &res.Items[i]
		}
	}
	return nil
}

// TestSlixSubscriptionHandshake walks the subscription handshake of RFC 6121
// §3.1 in both directions, from none to both.
func TestSlixSubscriptionHandshake(t *testing.T) {
	t.Parallel()
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		t.Parallel()
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "alice pw"), s.AddUser(t, "bob", "bob pw")
		alice := slixLogin(t, s, aj, "alice pw", "a")
		bob := slixLogin(t, s, bj, "bob pw", "b")
		slixAvailable(t, alice, "")
		slixAvailable(t, bob, "")
		a, b := aj.String(), bj.String()

		// alice asks (§3.1.2): her roster shows the request as pending.
		alice.Do(t, map[string]any{"cmd": "presence", "type": "subscribe", "to": b})
		alice.Expect(t, "roster_push", slixPush(t, alice, b, "none", "subscribe"))
		bob.Expect(t, "presence", slixPresence(a, "subscribe"))
		// A bare request is not in bob's roster (§3.1.3).
		if it := slixItem(slixRoster(t, bob, "pending"), a); it != nil {
			t.Fatalf("pending-in item in bob's roster: %+v", *it)
		}

		// bob approves (§3.1.5). alice gets the approval, then the push
		// (§3.1.6), then bob's presence.
		bob.Do(t, map[string]any{"cmd": "presence", "type": "subscribed", "to": a})
		bob.Expect(t, "roster_push", slixPush(t, bob, a, "from", ""))
		alice.Expect(t, "presence", slixPresence(b, "subscribed"))
		alice.Expect(t, "roster_push", slixPush(t, alice, b, "to", ""))
		alice.Expect(t, "presence", slixPresence(bob.JID.String(), ""))

		// And back: bob asks, alice approves.
		bob.Do(t, map[string]any{"cmd": "presence", "type": "subscribe", "to": a})
		bob.Expect(t, "roster_push", slixPush(t, bob, a, "from", "subscribe"))
		alice.Expect(t, "presence", slixPresence(b, "subscribe"))
		alice.Do(t, map[string]any{"cmd": "presence", "type": "subscribed", "to": b})
		alice.Expect(t, "roster_push", slixPush(t, alice, b, "both", ""))
		bob.Expect(t, "presence", slixPresence(a, "subscribed"))
		bob.Expect(t, "roster_push", slixPush(t, bob, a, "both", ""))
		bob.Expect(t, "presence", slixPresence(alice.JID.String(), ""))

		for _, c := range []struct {
			d       *testenv.Driver
			contact string
		}{{alice, b}, {bob, a}} {
			res := slixRoster(t, c.d, "final")
			it := slixItem(res, c.contact)
			if len(res.Items) != 1 || it == nil || it.Subscription != "both" || it.Ask != "" || it.Approved {
				t.Errorf("%s's roster: %+v, want only %s with subscription both", c.d.JID, res.Items, c.contact)
			}
		}
	})
}

// TestSlixRosterPushToSecondResource checks that a roster set from one
// resource is pushed to the account's other interested resource (RFC 6121
// §2.3.2), with the version that a roster get then finds current.
func TestSlixRosterPushToSecondResource(t *testing.T) {
	t.Parallel()
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		t.Parallel()
		s := testenv.Start(t, backend)
		aj := s.AddUser(t, "alice", "alice pw")
		r1 := slixLogin(t, s, aj, "alice pw", "r1")
		r2 := slixLogin(t, s, aj, "alice pw", "r2")

		r1.Do(t, map[string]any{"cmd": "roster_set", "id": "set1", "jid": "nurse@localhost",
			"name": "Nurse", "groups": []string{"Servants", "Capulet"}})
		// The resource that set the item gets the push too, before the result.
		r1.Expect(t, "roster_push", slixPush(t, r1, "nurse@localhost", "none", ""))
		r1.Expect(t, "iq_result", func(ev testenv.DriverEvent) bool { return ev.ID == "set1" })

		push := r2.Expect(t, "roster_push", slixPush(t, r2, "nurse@localhost", "none", ""))
		if push.Name != "Nurse" || !slices.Equal(push.Groups, []string{"Capulet", "Servants"}) ||
			push.Ask != "" || push.Approved || len(push.Items) != 1 {
			t.Fatalf("push on r2: %+v", push)
		}
		if res := slixRosterVer(t, r2, "current", push.Ver); !res.Empty {
			t.Fatalf("roster get with the pushed version %q: %+v, want an empty result", push.Ver, res)
		}
	})
}

// TestSlixRosterVersioning checks roster versioning (RFC 6121 §2.6) as
// slixmpp sends it.
func TestSlixRosterVersioning(t *testing.T) {
	t.Parallel()
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		t.Parallel()
		s := testenv.Start(t, backend)
		aj := s.AddUser(t, "alice", "alice pw")
		err := s.Store.PutRosterItem(context.Background(), aj.String(),
			storage.RosterItem{Contact: "romeo@localhost", Name: "Romeo", Subscription: storage.SubNone}, 0)
		if err != nil {
			t.Fatal(err)
		}
		alice := s.StartDriver(t, aj, "alice pw", "a")

		// An empty ver asks for the whole roster and its version (§2.6.2).
		full := slixRosterVer(t, alice, "v0", "")
		if full.Empty || !full.HasVer || full.Ver == "" || len(full.Items) != 1 || full.Items[0].JID != "romeo@localhost" {
			t.Fatalf("roster get with ver=\"\": %+v", full)
		}
		old := full.Ver
		if res := slixRosterVer(t, alice, "v1", old); !res.Empty {
			t.Fatalf("roster get with the current version: %+v, want an empty result (§2.6.3)", res)
		}

		alice.Do(t, map[string]any{"cmd": "roster_set", "id": "set1", "jid": "nurse@localhost", "name": "Nurse"})
		push := alice.Expect(t, "roster_push", slixPush(t, alice, "nurse@localhost", "none", ""))
		alice.Expect(t, "iq_result", func(ev testenv.DriverEvent) bool { return ev.ID == "set1" })

		res := slixRosterVer(t, alice, "v2", old)
		if res.Empty || !res.HasVer || res.Ver == old || len(res.Items) != 2 ||
			slixItem(res, "nurse@localhost") == nil || slixItem(res, "romeo@localhost") == nil {
			t.Fatalf("roster get with a stale version %q: %+v, want both items and a new version", old, res)
		}
		if push.Ver != res.Ver {
			t.Errorf("push carried version %q, the roster is at %q", push.Ver, res.Ver)
		}
		if res := slixRosterVer(t, alice, "v3", res.Ver); !res.Empty {
			t.Fatalf("roster get with the new version: %+v, want an empty result", res)
		}
	})
}

// TestSlixPresenceAndAbruptClose checks presence between mutual contacts,
// and the unavailable the server sends for a client whose connection is cut
// (RFC 6121 §4.5.2).
func TestSlixPresenceAndAbruptClose(t *testing.T) {
	t.Parallel()
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		t.Parallel()
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "alice pw"), s.AddUser(t, "bob", "bob pw")
		subscribeBoth(t, s, aj, bj)
		alice := s.StartDriver(t, aj, "alice pw", "a")
		slixAvailable(t, alice, "reading")
		bob := s.StartDriver(t, bj, "bob pw", "b")
		bob.Do(t, map[string]any{"cmd": "presence", "show": "away", "status": "at the balcony"})

		// bob's broadcast reaches alice (§4.2.2); his probe fetches hers
		// (§4.3).
		p := alice.Expect(t, "presence", slixPresence(bob.JID.String(), ""))
		if p.Status != "at the balcony" || p.Show != "away" {
			t.Errorf("alice got bob's presence %s", p.XML)
		}
		p = bob.Expect(t, "presence", slixPresence(alice.JID.String(), ""))
		if p.Status != "reading" {
			t.Errorf("bob got alice's presence %s", p.XML)
		}

		bob.Do(t, map[string]any{"cmd": "abort"})
		if code := bob.Wait(t); code != 0 {
			t.Fatalf("bob's client exited %d", code)
		}
		alice.Expect(t, "presence", slixPresence(bob.JID.String(), "unavailable"))
	})
}

// TestSlixOfflineMessages checks that messages to an account without an
// available resource are kept and delivered once, in order, with a delay
// stamp (XEP-0160, XEP-0203).
func TestSlixOfflineMessages(t *testing.T) {
	t.Parallel()
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		t.Parallel()
		s := testenv.Start(t, backend)
		aj, bj := s.AddUser(t, "alice", "alice pw"), s.AddUser(t, "bob", "bob pw")
		b := bj.String()
		alice := s.StartDriver(t, aj, "alice pw", "a")
		slixAvailable(t, alice, "")

		start := time.Now()
		bodies := []string{"m1", "m2", "m3"}
		for _, body := range bodies {
			alice.Do(t, map[string]any{"cmd": "message", "to": b, "body": body})
		}
		// alice's stanzas are handled in order, and storing one returns
		// only once it is stored: after this answer all three are kept.
		slixRoster(t, alice, "stored")

		// bob comes online and gets the three. Then comes a message he sends
		// himself after his presence: the server handles his stanzas in
		// order and delivers the queue at the initial presence, so anything
		// else kept would come before it.
		bob := s.StartDriver(t, bj, "bob pw", "b1")
		bob.Do(t, map[string]any{"cmd": "presence"})
		bob.Do(t, map[string]any{"cmd": "message", "to": bob.JID.String(), "body": "marker 1"})
		var last time.Time
		for _, body := range bodies {
			m := bob.Expect(t, "message", nil)
			if m.Body != body || m.From != alice.JID.String() || m.Type != "chat" {
				t.Fatalf("bob got %s, want %s from %s", m.XML, body, alice.JID)
			}
			stamp, err := time.Parse(time.RFC3339, m.Delay)
			if err != nil || m.DelayFrom != testenv.Domain {
				t.Fatalf("delay stamp %q from %q (%v): %s", m.Delay, m.DelayFrom, err, m.XML)
			}
			if stamp.Before(start.Add(-time.Second)) || stamp.After(time.Now().Add(time.Second)) || stamp.Before(last) {
				t.Errorf("delay stamp %s: not between %s and now, or before the previous message's %s", stamp, start, last)
			}
			last = stamp
		}
		slixMarker(t, bob, "marker 1")

		// Delivered messages are gone: at the next login only the marker
		// comes.
		bob.Do(t, map[string]any{"cmd": "quit"})
		if code := bob.Wait(t); code != 0 {
			t.Fatalf("bob's client exited %d", code)
		}
		bob = s.StartDriver(t, bj, "bob pw", "b2")
		bob.Do(t, map[string]any{"cmd": "presence"})
		bob.Do(t, map[string]any{"cmd": "message", "to": bob.JID.String(), "body": "marker 2"})
		slixMarker(t, bob, "marker 2")
	})
}

// slixMarker checks that the next message d gets is the one it sent itself
// with body, undelayed.
func slixMarker(t *testing.T, d *testenv.Driver, body string) {
	t.Helper()
	if m := d.Expect(t, "message", nil); m.Body != body || m.From != d.JID.String() || m.Delay != "" {
		t.Fatalf("%s got %s, want its own %q next", d.JID, m.XML, body)
	}
}
