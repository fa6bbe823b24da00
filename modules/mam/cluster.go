package mam

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// Across the nodes of a cluster (docs/cluster.md) each node caches the
// archiving preferences it has read (prefs.go), for any account whose
// messages it archived, online or not. Preferences set on one node are
// told to every other live node (mam-prefs): each forgets its copy and
// reads storage at the next message, so that a "never" holds everywhere at
// once rather than after prefsTTL. So is an account's removal, which
// removes its preferences.

// opPrefs is the operation, <mam-prefs owner="bare"/>.
const opPrefs = "mam-prefs"

// registerCluster handles the other nodes' changes.
func (m *Module) registerCluster(s *xmpp.Server) {
	s.HandleClusterOp(opPrefs, func(_ context.Context, op *xmpp.Element) {
		if owner := op.Get("owner"); owner != "" {
			m.prefs.forget(owner)
		}
	})
	// A removed account's preferences are gone from storage: an account
	// registered again under its name must not inherit them from a cache.
	s.HookAccountRemoved(func(ctx context.Context, bare jid.JID) {
		owner := bare.Bare().String()
		m.prefs.forget(owner)
		m.prefsChanged(ctx, owner)
	})
}

// prefsChanged tells the other nodes that owner's preferences changed.
func (m *Module) prefsChanged(ctx context.Context, owner string) {
	if m.srv.Clustered() && !xmpp.FromBus(ctx) {
		m.srv.SendClusterOpAll(ctx, xmpp.NewElement(xmpp.NSCluster, opPrefs, "owner", owner))
	}
}
