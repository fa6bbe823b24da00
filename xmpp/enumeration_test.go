package xmpp_test

import (
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/xmpp"
)

// SCRAM's first challenge must not tell whether an account exists: an
// unknown one gets the same salt and iteration count on every attempt, as a
// real one does, also after a restart on the same store.
func TestSCRAMDoesNotRevealAccounts(t *testing.T) {
	testenv.EachBackend(t, func(t *testing.T, backend string) {
		store := testenv.OpenStore(t, backend)
		s := testenv.Start(t, backend, func(s *xmpp.Server) { s.Store = store })
		s.AddUser(t, "alice", "pw")
		challenge := func(s *testenv.Server, user, mech string) (salt, iter string) {
			t.Helper()
			st := s.StartTLS(t, "127.0.0.1")
			first := base64.StdEncoding.EncodeToString([]byte("n,,n=" + user + ",r=abcdefghijklmnop"))
			io.WriteString(st, `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="`+mech+`">`+first+`</auth>`)
			el, err := st.Next()
			if err != nil || el.Local != "challenge" {
				t.Fatalf("%s %s: %v %v", user, mech, el, err)
			}
			b, err := base64.StdEncoding.DecodeString(el.Text())
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range strings.Split(string(b), ",") {
				switch {
				case strings.HasPrefix(f, "s="):
					salt = f[2:]
				case strings.HasPrefix(f, "i="):
					iter = f[2:]
				}
			}
			return salt, iter
		}
		for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256"} {
			aliceSalt, aliceIter := challenge(s, "alice", mech)
			ghostSalt, ghostIter := challenge(s, "ghost", mech)
			if s2, i2 := challenge(s, "alice", mech); s2 != aliceSalt || i2 != aliceIter {
				t.Fatalf("%s: a real account's salt changed: %s/%s then %s/%s", mech, aliceSalt, aliceIter, s2, i2)
			}
			if s2, i2 := challenge(s, "ghost", mech); s2 != ghostSalt || i2 != ghostIter {
				t.Fatalf("%s: an unknown account's salt changes between attempts (%s/%s then %s/%s): that tells it does not exist", mech, ghostSalt, ghostIter, s2, i2)
			}
			if ghostIter != aliceIter {
				t.Fatalf("%s: iteration counts differ: %s for a real account, %s for an unknown one", mech, aliceIter, ghostIter)
			}
			if otherSalt, _ := challenge(s, "phantom", mech); otherSalt == ghostSalt {
				t.Fatalf("%s: two unknown accounts share a salt", mech)
			}
			if raw, _ := base64.StdEncoding.DecodeString(ghostSalt); len(raw) != 16 {
				t.Fatalf("unknown account's salt is %d bytes, a real one 16", len(raw))
			}
		}
		// Another server (a restart, or another node) on the same store
		// makes up the same salt.
		ghost, _ := challenge(s, "ghost", "SCRAM-SHA-256")
		s2 := testenv.Start(t, backend, func(s *xmpp.Server) { s.Store = store })
		if again, _ := challenge(s2, "ghost", "SCRAM-SHA-256"); again != ghost {
			t.Fatalf("another server on the same store gives another salt: %s vs %s", again, ghost)
		}
	})
}
