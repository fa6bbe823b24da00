package roster

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// sessionsGone tells this node's sessions that sessions of a cluster node
// that died are unavailable (RFC 6121 §4.5.2 as the server would have said
// it for them): each gone resource's subscribers here, and the account's
// own resources here, get unavailable presence from its full JID. Every
// surviving node does this for the sessions it holds, so nothing goes over
// the bus.
func (m *Module) sessionsGone(ctx context.Context, gone map[string][]string) {
	for owner, resources := range gone {
		if !m.local(owner) {
			continue
		}
		subscribers := m.subscribers(ctx, owner)
		for _, res := range resources {
			full, err := jid.Parse(owner + "/" + res)
			if err != nil {
				continue
			}
			p := xmpp.NewElement(xmpp.NSClient, "presence", "from", full.String(), "type", "unavailable")
			f := xmpp.NewFanout(p)
			for _, c := range subscribers {
				if m.local(c) {
					m.srv.Router().DeliverFanoutEach(ctx, c, f, func(s *xmpp.Session) bool {
						ok, _ := s.Available()
						return ok
					})
				}
			}
			m.srv.Router().DeliverFanoutEach(ctx, owner, f, func(s *xmpp.Session) bool {
				ok, _ := s.Available()
				return ok
			})
		}
	}
}

// announceAgain sends the presence of every available session here again,
// to its subscribers and the account's resources, on every node: the
// other nodes may have taken them for gone (their entries had expired) and
// told their contacts so.
func (m *Module) announceAgain(ctx context.Context) {
	for _, s := range m.srv.LocalSessions() {
		m.Rebroadcast(ctx, s, func(p *xmpp.Element) *xmpp.Element { return p })
	}
}

// Across the nodes of a cluster (docs/cluster.md) each node caches the
// rosters of the accounts with sessions there (cache.go). A change to an
// account's stored items made on one node (a roster set or remove, a
// subscription state change, whichever node's session or federation link
// caused it) is told to every other live node: roster-changed as soon as
// it is stored, so that each drops its copy and reads storage at its next
// use (presence broadcasts, probes, roster gets and versions, the next
// change), and roster-push with the item when the account's clients are to
// be told, so that each pushes it to the account's interested sessions it
// holds, with the version it now computes (the same as the sender's: both
// digest what storage holds). Team and project membership needs neither:
// every node watches the groups in the database itself (groups.go).

// The operations: <roster-changed owner="bare"/>, and <roster-push
// owner="bare"> with the roster <item/> as a push carries it.
const (
	opChanged = "roster-changed"
	opPush    = "roster-push"
)

// maxQueuedPushes bounds the pushes from other nodes waiting here; past
// it they are dropped and logged (at most once, as the bus is).
const maxQueuedPushes = 1024

// remotePush is a push another node asked this one to make.
type remotePush struct {
	owner string
	item  *xmpp.Element
}

// registerCluster handles the other nodes' changes. The cache is dropped
// in the bus's goroutine, before anything else from the bus is handled;
// the pushes, which read storage for the version, are made in order by a
// goroutine of their own.
func (m *Module) registerCluster(s *xmpp.Server) {
	m.remotePushes = xmpp.Queue(s, maxQueuedPushes, func(ctx context.Context, p remotePush) {
		m.pushItem(ctx, p.owner, p.item)
	})
	s.HandleClusterOp(opChanged, func(_ context.Context, op *xmpp.Element) {
		if owner := op.Get("owner"); owner != "" {
			m.invalidate(owner)
		}
	})
	s.HandleClusterOp(opPush, m.pushedElsewhere)
}

// stale drops this node's copy of owner's roster after a write of its
// stored items, and tells the other nodes to drop theirs.
func (m *Module) stale(ctx context.Context, owner string) {
	m.invalidate(owner)
	if m.srv.Clustered() && !xmpp.FromBus(ctx) {
		m.srv.SendClusterOpAll(ctx, xmpp.NewElement(xmpp.NSCluster, opChanged, "owner", owner))
	}
}

// pushAll pushes it to owner's interested sessions here and on every
// other node: a change to a stored item, which only this node saw.
func (m *Module) pushAll(ctx context.Context, owner string, it item) {
	if it.hidden() {
		return
	}
	el := itemElement(it)
	m.pushItem(ctx, owner, el)
	if m.srv.Clustered() && !xmpp.FromBus(ctx) {
		op := xmpp.NewElement(xmpp.NSCluster, opPush, "owner", owner)
		m.srv.SendClusterOpAll(ctx, op.Add(el))
	}
}

// pushedElsewhere is another node's push: the roster changed there, so
// this node's copy goes at once, and the push, when owner has sessions
// here, waits its turn.
func (m *Module) pushedElsewhere(_ context.Context, op *xmpp.Element) {
	owner, el := op.Get("owner"), op.Child(NSRoster, "item")
	if owner == "" || el == nil {
		return
	}
	m.invalidate(owner)
	if m.account(owner) == nil {
		return
	}
	if !m.remotePushes(remotePush{owner: owner, item: el}) {
		m.log.Warn("too many roster pushes from other nodes; one dropped", "jid", owner)
	}
}
