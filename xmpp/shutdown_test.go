package xmpp_test

import (
	"context"
	"sync"
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

// closer closes the session a message with the body "close it first" is
// for, just before the router delivers it: the session is still
// registered, and closed.
type closer struct{ srv *xmpp.Server }

func (m *closer) Register(s *xmpp.Server) {
	m.srv = s
	s.Hook(xmpp.MessageIn, 1000, func(_ context.Context, ev *xmpp.StanzaEvent) bool {
		if b := ev.Stanza.Child(xmpp.NSClient, "body"); b != nil && b.Text() == "close it first" {
			if sess := m.srv.SessionOf(ev.To); sess != nil {
				sess.Close(&xmpp.StreamError{Condition: xmpp.SystemShutdown})
			}
		}
		return false
	})
}

// A message for a session that is closing (a shutdown, a conflict, a
// full queue) but not yet gone from the router is not dropped: it goes
// where it would go without that session, here to offline storage, and
// its recipient gets it at the next sign-in (issue 21: acknowledged
// messages were lost during a shutdown).
func TestMessageToClosingSessionIsKept(t *testing.T) {
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.Modules = append(modules.Default(modules.Options{Store: s.Store}), &closer{})
	})
	alice := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
	bob := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "desk")
	bob.SendRaw(t, `<presence/>`)
	bob.Expect(t, "own presence", func(el *xmpp.Element) bool { return el.Local == "presence" })
	alice.SendRaw(t, `<message type="chat" to="`+bob.JID.String()+`"><body>close it first</body></message>`)
	bob.ExpectStreamError(t, "system-shutdown")
	// alice's next stanza is answered after the message was handled: no
	// error came back for it.
	alice.SendRaw(t, `<iq type="get" id="after" to="localhost"><ping xmlns="urn:xmpp:ping"/></iq>`)
	if el := alice.Expect(t, "the ping's answer", func(el *xmpp.Element) bool {
		return el.Get("id") == "after" || el.Get("type") == "error"
	}); el.Get("type") == "error" {
		t.Fatalf("alice got an error: %s", el)
	}
	again := s.Dial(t, bob.JID, "pw", "desk")
	again.SendRaw(t, `<presence/>`)
	again.Expect(t, "the message, from offline storage", func(el *xmpp.Element) bool {
		b := el.Child(xmpp.NSClient, "body")
		return el.Local == "message" && b != nil && b.Text() == "close it first"
	})
}

// endWatch records the server's context as each session ends.
type endWatch struct {
	mu   sync.Mutex
	errs []error
}

func (m *endWatch) Register(s *xmpp.Server) {
	s.HookSession(xmpp.SessionEnded, 0, func(ctx context.Context, _ *xmpp.Session) {
		m.mu.Lock()
		m.errs = append(m.errs, ctx.Err(), s.Context().Err())
		m.mu.Unlock()
	})
}

// Shutdown ends the sessions while the server's context still lives:
// their modules' last work (offline storage of what their clients had not
// acknowledged, registry clean-up, presence to contacts) is not cut short
// by a cancelled context. The context ends after them.
func TestShutdownEndsSessionsBeforeCancelling(t *testing.T) {
	watch := &endWatch{}
	var srv *xmpp.Server
	s := testenv.Start(t, "sqlite", func(s *xmpp.Server) {
		s.Modules = append(modules.Default(modules.Options{Store: s.Store}), watch)
		srv = s
	})
	a := s.Dial(t, s.AddUser(t, "alice", "pw"), "pw", "r")
	b := s.Dial(t, s.AddUser(t, "bob", "pw"), "pw", "r")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	a.ExpectStreamError(t, "system-shutdown")
	b.ExpectStreamError(t, "system-shutdown")
	if srv.Context().Err() == nil {
		t.Error("the server's context lives on after Shutdown")
	}
	watch.mu.Lock()
	defer watch.mu.Unlock()
	if len(watch.errs) != 4 {
		t.Fatalf("%d session ends seen, want 2", len(watch.errs)/2)
	}
	for _, err := range watch.errs {
		if err != nil {
			t.Errorf("a session ended with the context done: %v", err)
		}
	}
}
