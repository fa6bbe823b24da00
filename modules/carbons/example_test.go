package carbons_test

import (
	"context"

	"github.com/xmppd/xmppd/modules/carbons"
	"github.com/xmppd/xmppd/xmpp"
)

// A server with Message Carbons. modules.Default has it; a server that
// picks its own modules lists it.
func Example() {
	srv := &xmpp.Server{Domain: "example.org", Modules: []xmpp.Module{&carbons.Module{}}}
	_ = srv // srv.ServeC2S(listener) serves it
}

// mirror is a module in the shape of carbons, in ten lines: a MessageOut
// hook that hands what a client sends to the account's other sessions
// through the Router, and lets the message go on.
type mirror struct{}

func (mirror) Register(s *xmpp.Server) {
	s.Hook(xmpp.MessageOut, 0, func(ctx context.Context, ev *xmpp.StanzaEvent) bool {
		s.Router().DeliverEach(ctx, ev.Session.JID().Bare(), func(o *xmpp.Session) *xmpp.Element {
			if o == ev.Session {
				return nil // not back to the sender
			}
			return ev.Stanza // DeliverEach addresses a copy to o
		})
		return false // not handled: the router delivers the message too
	})
}

// How a module hooks a stage of a stanza's way: see mirror above.
func Example_hook() {
	srv := &xmpp.Server{Domain: "example.org", Modules: []xmpp.Module{mirror{}}}
	_ = srv
}
