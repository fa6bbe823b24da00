package testenv_test

import (
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// TestGoSendxmppTrust checks that the go-sendxmpp helper verifies the
// server's certificate rather than skipping verification: trusting only
// another certificate for the same domain, it refuses the server on both
// ports, before it sends its credentials.
func TestGoSendxmppTrust(t *testing.T) {
	testenv.NeedGoSendxmpp(t)
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
	}
}
