package xmpp_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/internal/testenv"
	"github.com/xmppd/xmppd/modules"
	"github.com/xmppd/xmppd/xmpp"
)

// stuckModule's shutdown hook never returns, as a module in a deadlock
// would not.
type stuckModule struct{ release chan struct{} }

func (m stuckModule) Register(s *xmpp.Server) {
	s.OnShutdown(func() { <-m.release })
}

// Shutdown returns by its deadline whatever a module is doing, and the
// clients still get <system-shutdown/>.
func TestShutdownWithStuckModule(t *testing.T) {
	stuck := stuckModule{release: make(chan struct{})}
	defer close(stuck.release)
	var srv *xmpp.Server
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.Modules = append(modules.Default(modules.Options{Store: s.Store}), stuck)
		srv = s
	})
	c := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	err := srv.Shutdown(ctx)
	took := time.Since(start)
	if took > 4*time.Second {
		t.Fatalf("Shutdown took %v with a 2 s deadline", took)
	}
	c.ExpectStreamError(t, "system-shutdown")
	t.Logf("Shutdown returned %v after %v", err, took)
}

// echo is a component that passes every message it gets on to its peer and
// to itself: two of them would loop forever through the router if the
// router let them.
type echo struct {
	srv          *xmpp.Server
	domain, peer string
	calls        atomic.Int64
}

func (e *echo) Register(s *xmpp.Server) {
	e.srv = s
	s.AddComponent(e.domain, e)
}

func (e *echo) HandleStanza(ctx context.Context, st *xmpp.Element, to jid.JID, origin *xmpp.Session) {
	e.calls.Add(1)
	if st.Local != "message" {
		return
	}
	for _, dest := range []string{"again@" + e.domain, "x@" + e.peer} {
		m := st.ShallowCopy()
		m.Set("from", to.String())
		m.Set("to", dest)
		e.srv.Router().Route(ctx, m, nil)
	}
}

// Routing loops through components are cut by construction: a component's
// stanza to its own domain is dropped, and stanzas that the server and its
// components make may hand each other on only so deep.
func TestRoutingLoopsAreCut(t *testing.T) {
	a := &echo{domain: "a.localhost", peer: "b.localhost"}
	b := &echo{domain: "b.localhost", peer: "a.localhost"}
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.Modules = append(modules.Default(modules.Options{Store: s.Store}), a, b)
	})
	c := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
	c.SendRaw(t, `<message to="loop@a.localhost"><body>round and round</body></message>`)
	c.SendRaw(t, `<iq type="get" id="after" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
	c.Expect(t, "ping answer after the loop", byID("after"))
	// a → b → a → ... until the depth bound, and never a to a.
	if n := a.calls.Load() + b.calls.Load(); n < 2 || n > 16 {
		t.Fatalf("%d hand-overs for one message", n)
	}
	s.Others(t)
}
