package roster_test

import (
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
)

// When the other nodes of a cluster may have taken this node's sessions
// for gone, each available session's presence goes out again, as it was;
// when a dead node's sessions are reported gone, their contacts here are
// told they are unavailable.
func TestClusterPresenceRepairs(t *testing.T) {
	s := testenv.Start(t, "sqlite")
	aj, bj := s.AddUser(t, "alice", "pw"), s.AddUser(t, "bob", "pw")
	subscribeBoth(t, s, aj, bj)
	a, b := online(t, s, aj, "a"), online(t, s, bj, "b")
	a.Expect(t, "bob's presence", isPresence(b.JID.String(), ""))
	b.SendRaw(t, `<presence><status>at work</status></presence>`)
	a.Expect(t, "bob's new status", isPresence(b.JID.String(), ""))

	s.Server.TakenForGone(t.Context())
	p := a.Expect(t, "bob's presence again", isPresence(b.JID.String(), ""))
	if st := p.Child("", "status"); st == nil || st.Text() != "at work" {
		t.Fatalf("bob's presence sent again is not the last one: %s", p)
	}

	// A session of another node (none here has that resource) reported gone.
	s.Server.SessionsGone(t.Context(), map[string][]string{bj.String(): {"elsewhere"}})
	a.Expect(t, "unavailable from bob's resource elsewhere", isPresence(bj.String()+"/elsewhere", "unavailable"))
}
