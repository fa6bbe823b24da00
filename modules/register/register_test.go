package register_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules/register"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

var seq atomic.Int64

func expectCondition(t *testing.T, el *xmpp.Element, cond xmpp.Condition) {
	t.Helper()
	e := el.Child(xmpp.NSClient, "error")
	if el.Get("type") != "error" || e == nil || e.Child(xmpp.NSStanzas, string(cond)) == nil {
		t.Fatalf("want a %s error, got %s", cond, el)
	}
}

// canLogin reports whether user signs in with password by PLAIN and by
// SCRAM-SHA-256 and SCRAM-SHA-1; the three must agree.
func canLogin(t *testing.T, s *testenv.Server, user jid.JID, password string) bool {
	t.Helper()
	_, plainErr := s.DialFrom(t, "127.0.0.1", user, password, "")
	sha256Err := s.DialMech(user, password, sasl.ScramSha256)
	sha1Err := s.DialMech(user, password, sasl.ScramSha1)
	ok := plainErr == nil
	if (sha256Err == nil) != ok || (sha1Err == nil) != ok {
		t.Fatalf("%s with %q: PLAIN %v, SCRAM-SHA-256 %v, SCRAM-SHA-1 %v", user, password, plainErr, sha256Err, sha1Err)
	}
	return ok
}

// TestPasswordChange: a signed-in user changes its password (§3.3); then
// only the new one signs in, by PLAIN and SCRAM, and the account's other
// session, signed in with the old one, ends.
func TestPasswordChange(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		aj := s.AddUser(t, "alice", "old")
		s.AddUser(t, "bob", "pw")
		a1 := s.Dial(t, aj, "old", "a1")
		a2 := s.Dial(t, aj, "old", "a2")

		got := a1.IQ(t, "get", "", `<query xmlns="`+register.NS+`"/>`)
		q := got.Child(register.NS, "query")
		if got.Get("type") != "result" || q == nil || q.Child(register.NS, "registered") == nil ||
			q.Child(register.NS, "username").Text() != "alice" {
			t.Fatalf("get while signed in: %s", got)
		}

		for _, tc := range []struct {
			name, payload string
			cond          xmpp.Condition
		}{
			{"another account", `<username>bob</username><password>x</password>`, xmpp.NotAllowed},
			{"no password", `<username>alice</username>`, xmpp.BadRequest},
			{"empty password", `<username>alice</username><password/>`, xmpp.BadRequest},
		} {
			got := a1.IQ(t, "set", testenv.Domain, `<query xmlns="`+register.NS+`">`+tc.payload+`</query>`)
			if got.Get("type") != "error" {
				t.Fatalf("%s: accepted: %s", tc.name, got)
			}
			expectCondition(t, got, tc.cond)
		}
		if !canLogin(t, s, jid.MustParse("bob@"+testenv.Domain), "pw") {
			t.Fatal("bob's password changed by alice's attempt")
		}

		got = a1.IQ(t, "set", testenv.Domain, `<query xmlns="`+register.NS+`"><username>alice</username><password>new secret</password></query>`)
		if got.Get("type") != "result" {
			t.Fatalf("password change: %s", got)
		}
		a2.ExpectStreamError(t, "not-authorized")
		// The session that changed it goes on.
		if got := a1.IQ(t, "get", "", `<ping xmlns="urn:xmpp:ping"/>`); got.Get("type") != "result" {
			t.Fatalf("ping after the change: %s", got)
		}
		if canLogin(t, s, aj, "old") {
			t.Fatal("the old password still signs in")
		}
		if !canLogin(t, s, aj, "new secret") {
			t.Fatal("the new password does not sign in")
		}
	})
}

// TestRemove: a user removes its account (§3.2): it gets its answer, then
// every session of the account ends with <not-authorized/>, nothing stored
// for it remains, and it no longer signs in.
func TestRemove(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		ctx := context.Background()
		aj := s.AddUser(t, "alice", "pw")
		bj := s.AddUser(t, "bob", "pw")
		a := aj.String()
		if err := s.Store.PutRosterItem(ctx, a, storage.RosterItem{Contact: bj.String(), Subscription: storage.SubBoth}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Store.PutRosterItem(ctx, bj.String(), storage.RosterItem{Contact: a, Subscription: storage.SubBoth}, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Store.Block(ctx, a, []string{"eve@example.net"}, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Store.StoreOffline(ctx, a, []byte(`<message/>`), storage.OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
		a1 := s.Dial(t, aj, "pw", "a1")
		a2 := s.Dial(t, aj, "pw", "a2")
		b := s.Dial(t, bj, "pw", "b")
		// An interested resource (RFC 6121 §2.1.6) gets roster pushes.
		if got := b.IQ(t, "get", "", `<query xmlns="jabber:iq:roster"/>`); got.Get("type") != "result" {
			t.Fatalf("bob's roster: %s", got)
		}

		id := "remove1"
		a1.SendRaw(t, `<iq type="set" id="`+id+`"><query xmlns="`+register.NS+`"><remove/></query></iq>`)
		got := a1.Expect(t, "answer to the removal", func(el *xmpp.Element) bool { return el.Get("id") == id })
		if got.Get("type") != "result" {
			t.Fatalf("removal: %s", got)
		}
		a1.ExpectStreamError(t, "not-authorized")
		a2.ExpectStreamError(t, "not-authorized")
		// Bob's subscriptions to and from alice are gone: whoever takes
		// the name next inherits none.
		b.Expect(t, "roster push of alice without subscription", func(el *xmpp.Element) bool {
			q := el.Child("jabber:iq:roster", "query")
			if el.Local != "iq" || q == nil {
				return false
			}
			it := q.Child("jabber:iq:roster", "item")
			return it != nil && it.Get("jid") == a && it.Get("subscription") == "none"
		})
		if it, err := s.Store.RosterItem(ctx, bj.String(), a); err != nil || it.Subscription != storage.SubNone {
			t.Fatalf("bob's item for alice after her removal: %+v, %v", it, err)
		}

		if _, err := s.Store.Credentials(ctx, a); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("credentials after removal: %v", err)
		}
		if items, err := s.Store.Roster(ctx, a); err != nil || len(items) != 0 {
			t.Fatalf("roster after removal: %v, %v", items, err)
		}
		if l, err := s.Store.BlockList(ctx, a); err != nil || len(l) != 0 {
			t.Fatalf("block list after removal: %v, %v", l, err)
		}
		if m, err := s.Store.OfflineMessages(ctx, a); err != nil || len(m) != 0 {
			t.Fatalf("offline messages after removal: %v, %v", m, err)
		}
		users, err := s.Store.ListUsers(ctx)
		if err != nil || strings.Join(users, " ") != bj.String() {
			t.Fatalf("accounts after removal: %v, %v", users, err)
		}
		if canLogin(t, s, aj, "pw") {
			t.Fatal("a removed account signs in")
		}
		// Bob is untouched.
		if got := b.IQ(t, "get", "", `<ping xmlns="urn:xmpp:ping"/>`); got.Get("type") != "result" {
			t.Fatalf("bob's ping: %s", got)
		}
	})
}
