package push

import (
	"context"

	"github.com/xmppd/xmppd/xmpp"
)

// Across the nodes of a cluster (docs/cluster.md) a message for an account
// that is away is counted by the node where it entered (the sender's), so
// each node keeps its own count for the account. When a client of the
// account comes back, on whichever node, every node must forget its count
// (reset), or the next notification after the account goes away again
// from a node that did not see the client come back would count the
// messages of the previous absence too. So the node where a session
// becomes available, or is resumed, tells the others (push-reset): once
// per session and availability, not at every presence update.

// opReset is the operation, <push-reset owner="bare"/>.
const opReset = "push-reset"

// registerCluster handles the other nodes' resets and keeps track of the
// sessions that told them.
func (m *Module) registerCluster(s *xmpp.Server) {
	s.HandleClusterOp(opReset, func(_ context.Context, op *xmpp.Element) {
		if owner := op.Get("owner"); owner != "" {
			m.reset(owner)
		}
	})
	s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) { m.told.Delete(sess) })
}

// resetAll forgets the count of sess's account here and, the first time
// sess is available since it was last unavailable (or when it was
// resumed: again is true), on the other nodes too.
func (m *Module) resetAll(ctx context.Context, sess *xmpp.Session, again bool) {
	bare := sess.JID().Bare().String()
	m.reset(bare)
	if !m.srv.Clustered() || xmpp.FromBus(ctx) {
		return
	}
	if _, told := m.told.Swap(sess, true); told && !again {
		return
	}
	m.srv.SendClusterOpAll(ctx, xmpp.NewElement(xmpp.NSCluster, opReset, "owner", bare))
}
