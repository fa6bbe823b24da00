package testenv_test

import (
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// TestCLITrust checks that the command-line client helpers verify the
// server's certificate rather than skipping verification: trusting only
// another certificate for the same domain, each client refuses the server
// on both ports. (With the right one they log in: xmpp's TestGoSendxmpp and
// TestSendxmppPerl.)
func TestCLITrust(t *testing.T) {
	testenv.NeedGoSendxmpp(t)
	testenv.NeedSendxmpp(t)
	s := testenv.Start(t, "sqlite")
	alice := s.AddUser(t, "alice", "alice pw")
	other, _, err := xmpp.SelfSignedCert(testenv.Domain)
	if err != nil {
		t.Fatal(err)
	}
	wrong := *s
	wrong.CertPEM = other
	for _, tc := range []struct {
		addr      string
		directTLS bool
	}{{s.C2S, false}, {s.DirectTLS, true}} {
		code, out := wrong.SendGoSendxmpp(t, tc.addr, tc.directTLS, alice, "alice pw", "never", "bob@localhost")
		if code == 0 || !strings.Contains(out, "certificate signed by unknown authority") {
			t.Fatalf("go-sendxmpp trusting another certificate (direct TLS %v) exited %d:\n%s", tc.directTLS, code, out)
		}
		// sendxmpp says only that it could not connect. After a failed
		// handshake on STARTTLS it waits about 12 s for its own timeout
		// before it says that authentication failed, so only direct TLS is
		// tried; both use the same -a.
		if !tc.directTLS {
			continue
		}
		if code, out := wrong.SendSendxmpp(t, tc.addr, tc.directTLS, alice, "alice pw", "never", "bob@localhost"); code == 0 {
			t.Fatalf("sendxmpp trusting another certificate (direct TLS %v) exited 0:\n%s", tc.directTLS, out)
		}
	}
}
