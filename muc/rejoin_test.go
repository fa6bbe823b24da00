package muc_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// TestRejoinOnNewSession: a client that comes back on a new connection with
// the same resource before the server has seen its old one go (a phone
// that changed networks) replaces the old session, joins its room again
// and is an occupant: it gets its own presence, and the room takes its
// messages instead of answering <not-acceptable/>.
//
// The old session's end is slowed here by a hook that takes 300 ms, as on
// a loaded server: in the soak (docs/SECURITY.md, "Soak") the new session's
// join then reached the room first, which took it for a presence update of
// the old session (sent to the old one), and the old session's end then
// took the occupant out.
func TestRejoinOnNewSession(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.Modules = modules.Default(modules.Options{Store: s.Store, MUC: true})
		s.HookSession(xmpp.SessionEnded, 100, func(context.Context, *xmpp.Session) {
			time.Sleep(300 * time.Millisecond) // a slow end, not a wait for anything
		})
	})
	aliceJID := s.AddUser(t, "alice", "pw")
	alice := s.Dial(t, aliceJID, "pw", "r")
	create(t, alice, "lobby", "alice")
	bob := user(t, s, "bob")
	join(t, bob, "lobby", "bob", "")
	bob.Expect(t, "own presence", presenceFrom("lobby@"+service+"/bob", ""))

	// Alice's new connection; the old one is not closed by its client.
	again := s.Dial(t, aliceJID, "pw", "r")
	join(t, again, "lobby", "alice", "")
	self := again.Expect(t, "own presence on joining again", presenceFrom("lobby@"+service+"/alice", ""))
	if got := codes(self); !slices.Contains(got, "110") {
		t.Fatalf("own presence on joining again: status codes %v, want 110", got)
	}
	again.SendRaw(t, `<message type="groupchat" to="lobby@`+service+`" id="m1"><body>back</body></message>`)
	echo := again.Expect(t, "the echo of its message", func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Get("id") == "m1"
	})
	if echo.Get("type") != "groupchat" || echo.Get("from") != "lobby@"+service+"/alice" {
		t.Fatalf("the room answered the message with %v", echo)
	}
	bob.Expect(t, "alice's message", func(el *xmpp.Element) bool {
		return el.Local == "message" && el.Get("id") == "m1" && el.Get("type") == "groupchat"
	})
}
