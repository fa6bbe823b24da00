package xmpp_test

import (
	"strings"
	"testing"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// TestGoSendxmpp proves that Debian's go-sendxmpp, a command-line client,
// logs in and sends a message over STARTTLS and over direct TLS (issue 14).
// It writes a newline after each element it sends, which RFC 6120 §11.7
// allows between elements and which once ended the stream during
// negotiation with <undefined-condition/>. A wrong password makes it fail
// and leaves the server serving everyone else; listening, it receives a
// message sent to it.
func TestGoSendxmpp(t *testing.T) {
	testenv.NeedGoSendxmpp(t)
	eachBackend(t, func(t *testing.T, backend string) {
		s := testenv.Start(t, backend)
		alice := s.AddUser(t, "alice", "alice pw")
		bob := s.AddUser(t, "bob", "bob pw")
		sendsOverBothTLS(t, s, alice, bob, "go-sendxmpp", func(addr string, directTLS bool, body string) (int, string) {
			return s.SendGoSendxmpp(t, addr, directTLS, alice, "alice pw", body, bob.String())
		})
		t.Run("wrong password", func(t *testing.T) {
			for _, tc := range []struct {
				addr      string
				directTLS bool
			}{{s.C2S, false}, {s.DirectTLS, true}} {
				code, out := s.SendGoSendxmpp(t, tc.addr, tc.directTLS, alice, "not it", "never", bob.String())
				if code == 0 {
					t.Fatalf("go-sendxmpp with a wrong password (direct TLS %v) exited 0; output:\n%s", tc.directTLS, out)
				}
				if !strings.Contains(out, "not-authorized") {
					t.Errorf("go-sendxmpp with a wrong password (direct TLS %v) did not say not-authorized (RFC 6120 §6.5.10):\n%s", tc.directTLS, out)
				}
			}
			s.Others(t)
		})
		t.Run("listen", func(t *testing.T) {
			// -d prints what the server sends: the copy of its own initial
			// presence (RFC 6121 §4.2.2) says bob is available, so a
			// message to his bare JID goes to this session.
			l := s.StartGoSendxmpp(t, s.DirectTLS, true, bob, "bob pw", nil, "--listen", "--debug")
			l.ExpectLine(t, "bob's own presence", func(line string) bool {
				return strings.HasPrefix(line, "<presence") && strings.Contains(line, `from="`+bob.String()+"/")
			})
			a := s.Dial(t, alice, "alice pw", "desk")
			body := "to the listener"
			a.SendRaw(t, `<message type="chat" to="`+bob.String()+`"><body>`+body+`</body></message>`)
			// It prints "TIME SENDER: BODY" (the sender's bare JID).
			line := l.ExpectLine(t, "the message", func(line string) bool {
				return !strings.HasPrefix(line, "<") && strings.Contains(line, body)
			})
			if !strings.HasSuffix(line, " "+alice.String()+": "+body) {
				t.Fatalf("listener printed %q, want the sender %s and the body %q", line, alice, body)
			}
		})
	})
}

// sendsOverBothTLS runs a command-line client's send (through send) over
// STARTTLS and over direct TLS, and checks that bob, online, receives the
// exact body from a full JID of alice.
func sendsOverBothTLS(t *testing.T, s *testenv.Server, alice, bob jid.JID, client string, send func(addr string, directTLS bool, body string) (int, string)) {
	t.Helper()
	for _, tc := range []struct {
		name      string
		addr      string
		directTLS bool
	}{
		{"starttls", s.C2S, false},
		{"direct TLS", s.DirectTLS, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := availableClient(t, s, bob, "bob pw")
			body := "hi from " + client + " over " + tc.name + " <&> ünïcode"
			if code, out := send(tc.addr, tc.directTLS, body); code != 0 {
				t.Fatalf("%s exited %d; output:\n%s", client, code, out)
			}
			msg := b.Expect(t, "message from "+client, func(el *xmpp.Element) bool { return el.Local == "message" })
			if got := msg.Child("", "body"); got == nil || got.Text() != body {
				t.Fatalf("bob got %s, want body %q", msg, body)
			}
			from, err := jid.Parse(msg.Get("from"))
			if err != nil || !from.Bare().Equal(alice) || from.Resourcepart() == "" {
				t.Fatalf("message from %q, want a full JID of %s", msg.Get("from"), alice)
			}
		})
	}
}

// availableClient logs user in with testenv's client and sends initial
// presence, so that a message to the bare JID is delivered to the session
// (RFC 6121 §8.5.2.1.1), and waits for the server's copy of it (§4.2.2).
func availableClient(t *testing.T, s *testenv.Server, user jid.JID, password string) *testenv.Client {
	t.Helper()
	c := s.Dial(t, user, password, "")
	c.SendRaw(t, `<presence/>`)
	c.Expect(t, "own presence", func(el *xmpp.Element) bool {
		return el.Local == "presence" && el.Get("from") == c.JID.String() && el.Get("type") == ""
	})
	return c
}

// TestSendxmppPerl: Debian's sendxmpp, the Perl client (Net::XMPP) that
// go-sendxmpp imitates, sends a message over STARTTLS and over direct TLS,
// and fails on a wrong password.
func TestSendxmppPerl(t *testing.T) {
	testenv.NeedSendxmpp(t)
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	bob := s.AddUser(t, "bob", "bob pw")
	sendsOverBothTLS(t, s, alice, bob, "sendxmpp", func(addr string, directTLS bool, body string) (int, string) {
		return s.SendSendxmpp(t, addr, directTLS, alice, "alice pw", body, bob.String())
	})
	t.Run("wrong password", func(t *testing.T) {
		if code, out := s.SendSendxmpp(t, s.C2S, false, alice, "not it", "never", bob.String()); code == 0 {
			t.Fatalf("sendxmpp with a wrong password exited 0; output:\n%s", out)
		}
		s.Others(t)
	})
}
