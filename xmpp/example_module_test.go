package xmpp_test

import (
	"context"

	"github.com/xmppd/xmppd/xmpp"
)

// receipts is a module in ten lines: it declares a feature, and every
// message a local client sends that asks for nothing yet gets a request
// for a delivery receipt (XEP-0184) before it is routed.
type receipts struct{}

const nsReceipts = "urn:xmpp:receipts"

func (receipts) Register(s *xmpp.Server) {
	s.AddFeature(xmpp.ToAccount, nsReceipts)
	s.Hook(xmpp.MessageOut, 10, func(ctx context.Context, ev *xmpp.StanzaEvent) bool {
		if ev.Stanza.Child(nsReceipts, "request") == nil {
			ev.Stanza.Add(xmpp.NewElement(nsReceipts, "request"))
		}
		return false // not handled: later hooks and the router go on
	})
}

// A module registers what it adds when the server starts: IQ handlers,
// disco features, hooks on the stages of a stanza's way (MessageOut,
// PresenceOut, MessageIn, PresenceIn, Deliver, Undeliverable) and of a
// session's life, stream features and element handlers. It delivers only
// through the Router.
func ExampleModule() {
	srv := &xmpp.Server{Domain: "example.com", Modules: []xmpp.Module{receipts{}}}
	_ = srv // srv.ServeC2S(listener) registers the modules and serves
}

// A hook on Deliver sees every stanza just before it is queued for a local
// session: it may replace it, or take it (hold it back, drop it).
func ExampleServer_Hook() {
	var srv xmpp.Server
	srv.Hook(xmpp.Deliver, 0, func(ctx context.Context, ev *xmpp.StanzaEvent) bool {
		if ev.Stanza.Local == "presence" && ev.Stanza.Get("type") == "probe" {
			return true // taken: the session never sees it
		}
		return false
	})
}
