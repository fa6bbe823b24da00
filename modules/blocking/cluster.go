package blocking

import (
	"context"

	"github.com/xmppd/xmppd/xmpp"
)

// Across the nodes of a cluster (docs/cluster.md) every node caches the
// lists of the accounts with sessions there. A block or unblock made on one
// node is stored first, then told to every other live node as one
// blocking-changed operation carrying the <block/> or <unblock/> itself:
// each node that caches the account's list applies it, so that its hooks
// refuse and drop at once what the new list says, and pushes it to the
// account's sessions there that asked for the list (§3.3, §3.4: every
// resource is told). A node without the account's sessions has nothing to
// change: it reads the list from storage when it needs it. A node that
// applied a change then reads the list again from storage, out of the
// bus's turn, to end up with what storage holds when changes made on two
// nodes at once crossed on the bus.

// opChanged is the operation, <blocking-changed owner="bare"> with the
// <block/> or <unblock/> (no items: unblock all) in the module's namespace.
const opChanged = "blocking-changed"

// maxReloads bounds the lists waiting to be read again here; past it,
// a reload is skipped (the change itself was applied).
const maxReloads = 1024

// registerCluster handles the other nodes' changes; the lists are read
// again from storage in order by a goroutine of their own, out of the
// bus's.
func (m *Module) registerCluster(s *xmpp.Server) {
	m.reloads = xmpp.Queue(s, maxReloads, m.reload)
	s.HandleClusterOp(opChanged, m.changedElsewhere)
}

// reload reads owner's list from storage again, when owner has sessions
// here: two changes made at once on two nodes reach each node in either
// order, and applying them as they came may leave a node with a list that
// storage does not hold; what storage holds once both are stored is the
// truth on every node.
func (m *Module) reload(ctx context.Context, owner string) {
	a := m.lockCached(owner)
	if a == nil {
		return
	}
	defer a.mu.Unlock()
	items, err := m.Store.BlockList(ctx, owner)
	if err != nil {
		m.log.Warn("reading the block list", "jid", owner, "err", err)
		return
	}
	m.set(a, newList(items))
}

// tellOthers tells every other node of a change to owner's list made here;
// payload is the <block/> or <unblock/> that made it.
func (m *Module) tellOthers(ctx context.Context, owner string, payload *xmpp.Element) {
	if !m.srv.Clustered() || xmpp.FromBus(ctx) {
		return
	}
	op := xmpp.NewElement(xmpp.NSCluster, opChanged, "owner", owner)
	m.srv.SendClusterOpAll(ctx, op.Add(payload))
}

// changedElsewhere applies another node's change to the cached list of
// owner, when owner has sessions here, pushes it to them, and has the list
// read again. It reads no storage itself (the bus waits meanwhile): the
// items are the normalised JIDs the other node stored, and adding or
// removing them gives at once the list that storage holds, unless another
// change crossed this one, which the reading again repairs.
func (m *Module) changedElsewhere(ctx context.Context, op *xmpp.Element) {
	owner := op.Get("owner")
	var payload *xmpp.Element
	for _, el := range op.Elements() {
		if el.Space == NS && (el.Local == "block" || el.Local == "unblock") {
			payload = el
		}
	}
	if owner == "" || payload == nil {
		return
	}
	var jids []string
	for _, it := range payload.Elements() {
		if it.Space == NS && it.Local == "item" && it.Get("jid") != "" {
			jids = append(jids, it.Get("jid"))
		}
	}
	// Waits while a session binding here loads the list: the change then
	// applies to what was loaded, whether or not it was in it already.
	a := m.lockCached(owner)
	if a == nil {
		return
	}
	defer a.mu.Unlock()
	switch {
	case payload.Local == "block":
		m.set(a, a.get().with(jids))
	case len(jids) == 0:
		m.set(a, list{})
	default:
		m.set(a, a.get().without(jids))
	}
	m.push(ctx, a, itemsElement(payload.Local, jids))
	m.reloads(owner)
}

// lockCached returns owner's cached list locked, or nil when this node
// holds none (no session of owner here, or it was just dropped).
func (m *Module) lockCached(owner string) *account {
	m.mu.RLock()
	a := m.accounts[owner]
	m.mu.RUnlock()
	if a == nil {
		return nil
	}
	a.mu.Lock()
	if a.dropped {
		a.mu.Unlock()
		return nil
	}
	return a
}
