package xmpp_test

import (
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/apptoken"
	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

var tokenSecret = []byte("the app's secret, 32 bytes long.")

// startWithTokens starts a server that accepts tokens signed with
// tokenSecret for its domain, with carol a member of a team but without an
// account, and alice and bob with accounts.
func startWithTokens(t *testing.T, backend string, configure ...func(*xmpp.Server)) *testenv.Server {
	t.Helper()
	s := testenv.Start(t, backend, append([]func(*xmpp.Server){func(s *xmpp.Server) {
		s.Tokens = apptoken.SignIn{
			Verifier: apptoken.Verifier{Secret: tokenSecret, Audience: testenv.Domain},
			Store:    s.Store,
		}
	}}, configure...)...)
	s.AddUser(t, "alice", "alice pw")
	s.AddUser(t, "bob", "bob pw")
	ctx := context.Background()
	if err := s.Store.CreateGroup(ctx, storage.Group{ID: "t1", Kind: storage.KindTeam, Name: "Team One"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Store.AddMember(ctx, "t1", "carol@localhost"); err != nil {
		t.Fatal(err)
	}
	return s
}

// appToken mints a token for local@localhost; aud "" is the domain.
func appToken(t *testing.T, local, aud string, ttl time.Duration, at time.Time) string {
	t.Helper()
	tok, err := apptoken.Mint(tokenSecret, local+"@"+testenv.Domain, aud, ttl, at)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tamperToken replaces part i of a token (0 header, 1 payload, 2 signature) by
// f of its decoded bytes.
func tamperToken(t *testing.T, tok string, i int, f func([]byte) []byte) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	parts[i] = base64.RawURLEncoding.EncodeToString(f(b))
	return strings.Join(parts, ".")
}

// TestTokenSlixmpp signs slixmpp in with tokens as PLAIN passwords, as an
// app's web or mobile client would (strophe.js does the same).
func TestTokenSlixmpp(t *testing.T) {
	testenv.NeedSlixmpp(t)
	eachBackend(t, func(t *testing.T, backend string) {
		// Refusals on purpose all come from 127.0.0.1.
		s := startWithTokens(t, backend, func(s *xmpp.Server) { s.MaxAuthFailures = -1 })
		_, c2s, _ := net.SplitHostPort(s.C2S)
		_, direct, _ := net.SplitHostPort(s.DirectTLS)
		bob := s.Dial(t, jid.MustParse("bob@localhost"), "bob pw", "desk")
		now := time.Now()

		for _, tc := range []struct {
			name, port, mode, user string
		}{
			{"account, STARTTLS", c2s, "starttls", "alice"},
			{"account, direct TLS", direct, "directtls", "alice"},
			{"group member without an account", c2s, "starttls", "carol"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				body := "hi from " + tc.name
				c := s.StartSlix(t, tc.port, "--mode", tc.mode, "--mech", "PLAIN",
					"--jid", tc.user+"@localhost/app", "--password", appToken(t, tc.user, "", 10*time.Minute, now),
					"--send-to", "bob@localhost/desk", "--body", body)
				if ev := c.Expect(t, "session_start"); ev.JID != tc.user+"@localhost/app" {
					t.Fatalf("bound %q", ev.JID)
				}
				el := bob.Expect(t, "message "+body, func(el *xmpp.Element) bool {
					b := el.Child("", "body")
					return el.Local == "message" && b != nil && b.Text() == body
				})
				if from := el.Get("from"); from != tc.user+"@localhost/app" {
					t.Fatalf("message from %q", from)
				}
				if code := c.Wait(t); code != 0 {
					t.Fatalf("exit %d", code)
				}
			})
		}

		alice := appToken(t, "alice", "", 10*time.Minute, now)
		for _, tc := range []struct {
			name, user, password string
		}{
			{"expired", "alice", appToken(t, "alice", "", time.Hour, now.Add(-2*time.Hour))},
			{"tampered signature", "alice", tamperToken(t, alice, 2, func(b []byte) []byte { b[0] ^= 1; return b })},
			{"tampered subject", "bob", tamperToken(t, alice, 1, func(b []byte) []byte {
				return []byte(strings.Replace(string(b), `"alice@`, `"bob@`, 1))
			})},
			{"wrong audience", "alice", appToken(t, "alice", "chat.example.com", 10*time.Minute, now)},
			{"someone else's", "bob", alice},
			{"neither account nor group member", "dave", appToken(t, "dave", "", 10*time.Minute, now)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				c := s.StartSlix(t, c2s, "--mode", "starttls", "--mech", "PLAIN",
					"--jid", tc.user+"@localhost", "--password", tc.password)
				if ev := c.Expect(t, "auth_failed"); ev.Condition != "not-authorized" {
					t.Fatalf("condition %q", ev.Condition)
				}
				if code := c.Wait(t); code != 1 {
					t.Fatalf("exit %d, want 1", code)
				}
			})
		}
	})
}

// TestTokenSignIn checks token sign-in with the scripted client and mellium,
// and that passwords keep working beside it.
func TestTokenSignIn(t *testing.T) {
	eachBackend(t, func(t *testing.T, backend string) {
		s := startWithTokens(t, backend, func(s *xmpp.Server) { s.MaxAuthFailures = -1 })
		alice, carol := jid.MustParse("alice@localhost"), jid.MustParse("carol@localhost")
		now := time.Now()

		a := s.Dial(t, alice, appToken(t, "alice", "", time.Minute, now), "token")
		c := s.Dial(t, carol, appToken(t, "carol", "", time.Minute, now), "")
		testenv.Exchange(t, a, c)
		testenv.Exchange(t, c, a)
		if err := s.DialMech(carol, appToken(t, "carol", "", time.Minute, now), sasl.Plain); err != nil {
			t.Fatalf("mellium PLAIN with a token: %v", err)
		}

		// Passwords still work, those with dots included; a token is no
		// SCRAM password.
		s.Dial(t, alice, "alice pw", "password")
		dotted := s.AddUser(t, "erin", "my.pass.word")
		s.Dial(t, dotted, "my.pass.word", "")
		if err := s.DialMech(alice, appToken(t, "alice", "", time.Minute, now), sasl.ScramSha256); err == nil {
			t.Fatal("a token worked as a SCRAM password")
		}

		for _, tc := range []struct {
			name     string
			user     jid.JID
			password string
		}{
			{"expired", alice, appToken(t, "alice", "", time.Minute, now.Add(-time.Hour))},
			{"neither account nor group member", jid.MustParse("dave@localhost"), appToken(t, "dave", "", time.Minute, now)},
			{"removed from the group", jid.MustParse("frank@localhost"), formerMember(t, s, now)},
			{"someone else's", carol, appToken(t, "alice", "", time.Minute, now)},
		} {
			if _, err := s.DialFrom(t, "127.0.0.1", tc.user, tc.password, ""); err == nil || !strings.Contains(err.Error(), "<not-authorized") {
				t.Errorf("%s: want SASL not-authorized, got %v", tc.name, err)
			}
		}
		s.Others(t)
	})
}

// formerMember puts frank in a group, mints his token, and takes him out
// again: the token is valid, the membership gone.
func formerMember(t *testing.T, s *testenv.Server, now time.Time) string {
	t.Helper()
	ctx := context.Background()
	if err := s.Store.AddMember(ctx, "t1", "frank@localhost"); err != nil {
		t.Fatal(err)
	}
	tok := appToken(t, "frank", "", time.Minute, now)
	if err := s.Store.RemoveMember(ctx, "t1", "frank@localhost"); err != nil {
		t.Fatal(err)
	}
	return tok
}

// Bad tokens count against the address like wrong passwords; without
// Server.Tokens a token is just a wrong password.
func TestTokenFailures(t *testing.T) {
	s := startWithTokens(t, "sqlite", func(s *xmpp.Server) { s.MaxAuthFailures = 2 })
	alice := jid.MustParse("alice@localhost")
	bad := appToken(t, "alice", "", time.Minute, time.Now().Add(-time.Hour))
	for i := 1; i <= 2; i++ {
		if _, err := s.DialFrom(t, "127.0.0.8", alice, bad, ""); err == nil || !strings.Contains(err.Error(), "<not-authorized") {
			t.Fatalf("attempt %d: want SASL not-authorized, got %v", i, err)
		}
	}
	if _, err := s.DialFrom(t, "127.0.0.8", alice, appToken(t, "alice", "", time.Minute, time.Now()), ""); err == nil {
		t.Fatal("blocked address signed in with a good token")
	}
	s.Dial(t, alice, appToken(t, "alice", "", time.Minute, time.Now()), "")

	off := testenv.Start(t, "sqlite")
	off.AddUser(t, "alice", "alice pw")
	if _, err := off.DialFrom(t, "127.0.0.1", alice, appToken(t, "alice", "", time.Minute, time.Now()), ""); err == nil || !strings.Contains(err.Error(), "<not-authorized") {
		t.Fatalf("token without Server.Tokens: want SASL not-authorized, got %v", err)
	}
}
