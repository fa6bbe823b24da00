package xmpp_test

import (
	"net"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// TestSlixmpp proves interoperability with a real third-party client,
// slixmpp: login over STARTTLS with SCRAM-SHA-1 and SCRAM-SHA-256, over
// direct TLS, resource binding, a message exchange between two slixmpp
// clients, and a wrong password refused.
func TestSlixmpp(t *testing.T) {
	testenv.NeedSlixmpp(t)
	eachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		s.AddUser(t, "alice", "alice pw")
		s.AddUser(t, "bob", "bob pw")
		_, c2s, _ := net.SplitHostPort(s.C2S)
		_, direct, _ := net.SplitHostPort(s.DirectTLS)
		for _, tc := range []struct {
			name, port, mode, mech string
		}{
			{"starttls SCRAM-SHA-1", c2s, "starttls", "SCRAM-SHA-1"},
			{"starttls SCRAM-SHA-256", c2s, "starttls", "SCRAM-SHA-256"},
			{"direct TLS SCRAM-SHA-256", direct, "directtls", "SCRAM-SHA-256"},
			{"direct TLS PLAIN", direct, "directtls", "PLAIN"},
			// slixmpp's own choice: it tries -PLUS with tls-unique, which
			// TLS 1.3 does not have, and must be able to retry on the stream.
			{"starttls slixmpp's choice", c2s, "starttls", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mode := []string{"--mode", tc.mode}
				if tc.mech != "" {
					mode = append(mode, "--mech", tc.mech)
				}
				bob := s.StartSlix(t, tc.port, append(mode,
					"--jid", "bob@localhost/slix", "--password", "bob pw", "--expect-body", "hi "+tc.name)...)
				if ev := bob.Expect(t, "session_start"); ev.JID != "bob@localhost/slix" {
					t.Fatalf("bob bound %q", ev.JID)
				}
				alice := s.StartSlix(t, tc.port, append(mode,
					"--jid", "alice@localhost", "--password", "alice pw", "--send-to", "bob@localhost", "--body", "hi "+tc.name)...)
				start := alice.Expect(t, "session_start")
				alice.Expect(t, "sent")
				msg := bob.Expect(t, "message")
				if msg.From != start.JID || msg.Body != "hi "+tc.name {
					t.Fatalf("bob got %+v, want from %s", msg, start.JID)
				}
				if code := alice.Wait(t); code != 0 {
					t.Fatalf("alice exited %d", code)
				}
				if code := bob.Wait(t); code != 0 {
					t.Fatalf("bob exited %d", code)
				}
			})
		}
		t.Run("wrong password", func(t *testing.T) {
			c := s.StartSlix(t, c2s, "--mode", "starttls", "--mech", "SCRAM-SHA-256",
				"--jid", "alice@localhost", "--password", "not it")
			if ev := c.Expect(t, "auth_failed"); ev.Condition != "not-authorized" {
				t.Fatalf("condition %q", ev.Condition)
			}
			if code := c.Wait(t); code != 1 {
				t.Fatalf("exit %d, want 1", code)
			}
		})
	})
}
