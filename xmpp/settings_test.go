package xmpp_test

import (
	"crypto/tls"
	"reflect"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// TestReconfigureFederation: a deny added while the server runs bounces the
// next stanza for that domain on a stream already set up, and the other
// server refuses a new stream from a domain it has come to deny; the
// sessions themselves go on.
func TestReconfigureFederation(t *testing.T) {
	const remoteDomain = "remote.test"
	local, remote := testenv.StartPair(t, "sqlite", remoteDomain)
	alice := local.Dial(t, local.AddUser(t, "alice", "pw"), "pw", "a")
	bob := remote.Dial(t, remote.AddUser(t, "bob", "pw"), "pw", "b")
	testenv.Exchange(t, alice, bob)

	st := local.Settings()
	st.S2SDeny = append(st.S2SDeny, remoteDomain)
	local.Reconfigure(st)
	alice.SendRaw(t, `<message type="chat" id="d1" to="`+bob.JID.String()+`"><body>hi</body></message>`)
	el := alice.Expect(t, "bounce", func(el *xmpp.Element) bool { return el.Get("id") == "d1" })
	if el.Get("type") != "error" || !strings.Contains(el.String(), "remote-server-not-found") {
		t.Fatalf("a message to a newly denied domain came back as %s", el)
	}

	// The remote server denies us from now on: our stream to it, set up
	// before, ends at the next stanza, and a new one is refused.
	rs := remote.Settings()
	rs.S2SAllow = []string{"someone-else.test"}
	remote.Reconfigure(rs)
	local.Reconfigure(xmpp.Settings{S2SRoutes: st.S2SRoutes}) // we allow it again
	alice.SendRaw(t, `<message type="chat" id="d2" to="`+bob.JID.String()+`"><body>cut off</body></message>`)
	waitFor(t, "the outgoing stream ended by the denying server", func() bool {
		_, up := links(local)[testenv.Domain+" "+remoteDomain]
		return !up
	})
	alice.SendRaw(t, `<message type="chat" id="d3" to="`+bob.JID.String()+`"><body>refused</body></message>`)
	el = alice.Expect(t, "bounce", func(el *xmpp.Element) bool { return el.Get("id") == "d3" })
	if el.Get("type") != "error" {
		t.Fatalf("a message to a server that denies us came back as %s", el)
	}

	remote.Reconfigure(xmpp.Settings{S2SRoutes: rs.S2SRoutes})
	alice.SendRaw(t, `<message type="chat" id="d4" to="`+bob.JID.String()+`"><body>again</body></message>`)
	got := bob.Expect(t, "a message", func(el *xmpp.Element) bool { return el.Local == "message" })
	if got.Get("id") != "d4" {
		t.Fatalf("bob got %s, want only d4: a denied server's stanzas were delivered", got)
	}
}

// TestReconfigureLimits: the settings come back with their defaults, their
// lists are copies, and a lower session limit applies at the next bind.
func TestReconfigureLimits(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	def := s.Settings()
	if def.QueueSize != xmpp.DefaultQueueSize || def.MaxSessionsPerAccount != xmpp.DefaultMaxSessionsPerAccount {
		t.Fatalf("defaults not applied: %+v", def)
	}
	user := s.AddUser(t, "carol", "pw")
	first := s.Dial(t, user, "pw", "one")

	deny := []string{"a.test"}
	s.Reconfigure(xmpp.Settings{MaxSessionsPerAccount: 1, S2SDeny: deny})
	deny[0] = "changed.test"
	if got := s.Settings(); got.S2SDeny[0] != "a.test" || got.MaxSessionsPerAccount != 1 || got.QueueSize != xmpp.DefaultQueueSize {
		t.Fatalf("after Reconfigure: %+v", got)
	}
	if _, err := s.DialFrom(t, "127.0.0.1", user, "pw", "two"); err == nil || !strings.Contains(err.Error(), "resource-constraint") {
		t.Fatalf("second session with a limit of 1: %v", err)
	}
	s.Reconfigure(def)
	if !reflect.DeepEqual(s.Settings(), def) {
		t.Fatalf("settings not restored: %+v", s.Settings())
	}
	testenv.Exchange(t, first, s.Dial(t, user, "pw", "two"))
}

// TestCertSource: a handshake after Set gets the new certificate, with or
// without a server name, and the connection made before keeps its own.
func TestCertSource(t *testing.T) {
	pair := func() tls.Certificate {
		c, k, err := xmpp.SelfSignedCert(testenv.Domain)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := tls.X509KeyPair(c, k)
		if err != nil {
			t.Fatal(err)
		}
		return cert
	}
	oldCert, newCert := pair(), pair()
	src := xmpp.NewCertSource(oldCert)
	cfg := src.TLSConfig()
	for _, name := range []string{"", testenv.Domain} {
		c, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil || !reflect.DeepEqual(c.Certificate, oldCert.Certificate) {
			t.Fatalf("before Set (%q): %v", name, err)
		}
	}
	src.Set(newCert)
	c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || !reflect.DeepEqual(c.Certificate, newCert.Certificate) {
		t.Fatalf("after Set: got the old certificate (%v)", err)
	}
	if len(cfg.Certificates) != 0 {
		t.Fatal("Certificates is set: clients without SNI would get it, not the source's")
	}
}
