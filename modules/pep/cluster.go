package pep

import (
	"context"
	"maps"
	"slices"

	"github.com/xmppd/xmppd/xmpp"
)

// Across the nodes of a cluster (docs/cluster.md) every node keeps its own
// copy of the services it has read (service.go) and knows the interest of
// its own sessions only (notify.go). So a change made on one node is told
// to every other: each forgets its copy of the owner's service, to read it
// again from the store, and when the change notifies, delivers the
// notification to those with interest among its own sessions and the
// resources elsewhere that sent it presence. The notification goes once,
// serialised, with what the others need to pick its recipients (the
// node's access model and affiliations); the store stays the only truth.

// opChanged is the operation that tells another node of a change to an
// account's service, <pep-changed owner="bare"/>. With a notification it
// holds <node name="..." access="..."> (with an <aff jid="..." aff="..."/>
// per affiliation) and the <message/> itself.
const opChanged = "pep-changed"

// maxQueued bounds the notifications from other nodes waiting here; past
// it, they are dropped and logged (at most once, as the bus is).
const maxQueued = 1024

// remoteEvent is a notification that another node sent, for this node's
// sessions and watchers.
type remoteEvent struct {
	owner string
	n     *node
	msg   *xmpp.Element
}

// registerCluster handles the other nodes' changes; the notifications are
// delivered in the order they came, by one goroutine, out of the bus's.
func (m *Module) registerCluster(s *xmpp.Server) {
	m.events = xmpp.Queue(s, maxQueued, func(ctx context.Context, ev remoteEvent) {
		m.notifyHere(ctx, ev.owner, ev.n, xmpp.NewFanout(ev.msg))
	})
	s.HandleClusterOp(opChanged, m.changedElsewhere)
}

// changed follows a change to owner's service made here: the event ev of
// its node n (nil: nothing to notify) goes to those with interest here,
// and every other node is told.
func (m *Module) changed(ctx context.Context, owner string, n *node, ev *xmpp.Element) {
	var msg *xmpp.Element
	if ev != nil {
		msg = m.message(owner, n, ev)
		m.notifyHere(ctx, owner, n, xmpp.NewFanout(msg))
	}
	if !m.srv.Clustered() || xmpp.FromBus(ctx) {
		return
	}
	m.srv.SendClusterOpAll(ctx, changeOp(owner, n, msg))
}

// changeOp is the operation that tells of a change to owner's service,
// with the notification msg of its node n when msg is not nil.
func changeOp(owner string, n *node, msg *xmpp.Element) *xmpp.Element {
	op := xmpp.NewElement(xmpp.NSCluster, opChanged, "owner", owner)
	if msg != nil {
		desc := xmpp.NewElement(xmpp.NSCluster, "node", "name", n.name, "access", n.cfg.access)
		for _, j := range slices.Sorted(maps.Keys(n.affs)) {
			desc.Add(xmpp.NewElement(xmpp.NSCluster, "aff", "jid", j, "aff", n.affs[j]))
		}
		op.Add(desc, msg)
	}
	return op
}

// readChangeOp reads changeOp's operation: msg is nil when there is no
// notification; owner is "" when op is not one.
func readChangeOp(op *xmpp.Element) (owner string, n *node, msg *xmpp.Element) {
	owner = op.Get("owner")
	desc, msg := op.Child(xmpp.NSCluster, "node"), op.Child(xmpp.NSClient, "message")
	if owner == "" || desc == nil || msg == nil {
		return owner, nil, nil
	}
	n = &node{name: desc.Get("name"), cfg: nodeConfig{access: desc.Get("access")}}
	for _, a := range desc.Elements() {
		if a.Space == xmpp.NSCluster && a.Local == "aff" {
			if n.affs == nil {
				n.affs = make(map[string]string)
			}
			n.affs[a.Get("jid")] = a.Get("aff")
		}
	}
	return owner, n, msg
}

// changedElsewhere is another node's change: this node's copy of the
// service goes at once, before anything else is read from it, and the
// notification waits its turn.
func (m *Module) changedElsewhere(_ context.Context, op *xmpp.Element) {
	owner, n, msg := readChangeOp(op)
	if owner == "" {
		return
	}
	m.forget(owner)
	if msg == nil {
		return
	}
	if !m.events(remoteEvent{owner: owner, n: n, msg: msg}) {
		m.srv.Log().Warn("pep: too many notifications from other nodes; one dropped", "jid", owner, "node", n.name)
	}
}
