package xmpp_test

import (
	"context"
	"strings"
	"testing"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// panicky answers one IQ by panicking, as a defect reached by a client's
// stanza would.
type panicky struct{}

const nsPanic = "urn:xmppd:test:panic"

func (panicky) Register(s *xmpp.Server) {
	s.HandleIQ(xmpp.ToServer, "get", nsPanic, "query", func(context.Context, *xmpp.IQ) (*xmpp.Element, error) {
		panic("a defect")
	})
}

// A panic while serving one session ends that session with
// <internal-server-error/> and is logged with its stack; the server and
// everyone else's sessions go on.
func TestPanicEndsOneSession(t *testing.T) {
	var log testenv.LogBuffer
	s := testenv.Start(t, "sqlite", debugLog(&log), func(s *xmpp.Server) {
		s.Modules = append(modules.Default(modules.Options{Store: s.Store}), panicky{})
	})
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
	bob := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "r")
	alice.SendRaw(t, `<iq type="get" id="p1" to="localhost"><query xmlns="`+nsPanic+`"/></iq>`)
	alice.ExpectStreamError(t, "internal-server-error")
	bob.SendRaw(t, `<message to="bob@localhost/r" id="m1"><body>still here</body></message>`)
	bob.Expect(t, "bob's own message", func(el *xmpp.Element) bool { return el.Local == "message" && el.Get("id") == "m1" })
	s.Dial(t, s.AddUser(t, "carol", "pw"), "pw", "r")
	if l := log.String(); !strings.Contains(l, "panic while serving a connection") || !strings.Contains(l, "a defect") {
		t.Errorf("the panic is not in the log:\n%s", l)
	}
}
