package csi_test

import (
	"context"
	"sync"

	"github.com/xmppd/xmppd/modules/csi"
	"github.com/xmppd/xmppd/xmpp"
)

// A server with Client State Indication, which holds at most 100 senders'
// presence for an inactive session.
func Example() {
	srv := &xmpp.Server{Domain: "example.org", Modules: []xmpp.Module{&csi.Module{MaxHeld: 100}}}
	_ = srv // srv.ServeC2S(listener) serves it
}

// hold is a module in the shape of csi: a Deliver hook that holds presence
// back, and an element handler that lets it go with DeliverHeld, which
// runs no hooks. State is per session, dropped when the session ends.
type hold struct {
	mu   sync.Mutex
	held map[*xmpp.Session][]*xmpp.Element
}

func (h *hold) Register(s *xmpp.Server) {
	h.held = make(map[*xmpp.Session][]*xmpp.Element)
	s.Hook(xmpp.Deliver, -1000, func(_ context.Context, ev *xmpp.StanzaEvent) bool {
		if ev.Stanza.Local != "presence" {
			return false
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		// Addressed: the stanza may be a room's template shared by many.
		h.held[ev.Session] = append(h.held[ev.Session], ev.Addressed())
		return true // handled: held
	})
	s.HandleElement("urn:example:hold", "release", func(_ context.Context, sess *xmpp.Session, _ *xmpp.Element) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, p := range h.held[sess] {
			s.Router().DeliverHeld(sess, p)
		}
		delete(h.held, sess)
		return nil
	})
	s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.held, sess)
	})
}

// How a module holds stanzas back and releases them: see hold above.
func Example_hold() {
	srv := &xmpp.Server{Domain: "example.org", Modules: []xmpp.Module{&hold{}}}
	_ = srv
}
