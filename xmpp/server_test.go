package xmpp_test

import (
	"testing"

	"mellium.im/sasl"

	"github.com/xmppd/xmppd/internal/testenv"
)

// eachBackend runs f once per storage backend.
var eachBackend = testenv.EachBackend

func TestLoginAndExchange(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		alice := s.AddUser(t, "alice", "wonder land")
		bob := s.AddUser(t, "bob", "s3cret")
		for _, m := range []sasl.Mechanism{sasl.ScramSha1, sasl.ScramSha256, sasl.ScramSha256Plus, sasl.ScramSha1Plus, sasl.Plain} {
			t.Run(m.Name, func(t *testing.T) {
				if err := s.DialMech(alice, "wonder land", m); err != nil {
					t.Fatalf("login with %s: %v", m.Name, err)
				}
			})
		}
		a := s.Dial(t, alice, "wonder land", "phone")
		b := s.Dial(t, bob, "s3cret", "")
		if a.JID.String() != "alice@localhost/phone" {
			t.Fatalf("bound %s", a.JID)
		}
		if b.JID.Resourcepart() == "" {
			t.Fatalf("no server-generated resource: %s", b.JID)
		}
		testenv.Exchange(t, a, b)
		testenv.Exchange(t, b, a)
	})
}
