package xmpp

import (
	"context"
	"slices"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

// Recipients returns the local sessions that the message st to the local
// address to (a bare or a full JID) goes to under RFC 6121 §8.5 as things
// stand: the session bound to a full JID, or, for a bare JID or a full JID
// with no session, what toBare picks (the available resources of highest
// non-negative priority, all of them for a headline). A MessageIn hook
// asks it before the router delivers, to tell which resources get the
// message itself (Message Carbons, XEP-0280 §6, copies it to the others).
func (r *Router) Recipients(to jid.JID, st *Element) []*Session {
	typ := st.Get("type")
	if to.Resourcepart() != "" {
		if s := r.session(to); s != nil {
			return []*Session{s} // §8.5.3.1
		}
		if !toBareWhenGone(typ) {
			return nil
		}
	}
	switch typ {
	case "error", "groupchat":
		return nil // §8.5.2.1.1: dropped or bounced
	}
	return highestPriority(r.sessions(to.Bare().String()), typ == "headline")
}

// Reach is where a message to an account goes in the whole cluster, for a
// MessageIn or MessageOut hook that must know it before the router
// delivers (Message Carbons, XEP-0280 §6, copies to the resources that do
// not get the message itself, on every node).
type Reach struct {
	// Direct are the resourceparts of the account's sessions, on any node,
	// that get the message itself.
	Direct []string
	// Nodes are the other nodes on which the account has a session,
	// available or not.
	Nodes []string
}

// Reach works out, as toFull and toBare would route it now, which
// sessions of the account addressed by to (on this server) get the
// message st, and on which other nodes the account has sessions. Without
// a bus, or for a message that came over it, it sees this node only.
func (r *Router) Reach(ctx context.Context, to jid.JID, st *Element) Reach {
	var out Reach
	var others []storage.Resource
	if r.srv.Bus != nil && !fromBus(ctx) {
		rs, err := r.srv.registry.Resources(ctx, to.Bare().String())
		if err != nil {
			r.srv.log.Warn("session registry", "jid", to.Bare().String(), "err", err)
		}
		for _, rm := range rs {
			if rm.Node == r.srv.node {
				continue
			}
			others = append(others, rm)
			if !slices.Contains(out.Nodes, rm.Node) {
				out.Nodes = append(out.Nodes, rm.Node)
			}
		}
	}
	typ := st.Get("type")
	if res := to.Resourcepart(); res != "" {
		if r.session(to) != nil {
			out.Direct = []string{res}
			return out
		}
		for _, rm := range others {
			if rm.Resource == res && rm.Available { // as toRemoteFull
				out.Direct = []string{res}
				return out
			}
		}
		if !toBareWhenGone(typ) {
			return out
		}
	}
	switch typ {
	case "error", "groupchat":
		return out
	}
	// RFC 6121 §8.5.2.1.1 over every node, as toBare and remoteTargets.
	type cand struct {
		res  string
		prio int
	}
	var all []cand
	best := -1
	for _, s := range r.sessions(to.Bare().String()) {
		if ok, p := s.Available(); ok && p >= 0 {
			all = append(all, cand{s.jid.Resourcepart(), p})
			best = max(best, p)
		}
	}
	for _, rm := range others {
		if rm.Available && rm.Priority >= 0 {
			all = append(all, cand{rm.Resource, rm.Priority})
			best = max(best, rm.Priority)
		}
	}
	for _, c := range all {
		if typ == "headline" || c.prio == best {
			out.Direct = append(out.Direct, c.res)
		}
	}
	return out
}

// AccountNodes returns the other nodes on which the account bare has a
// session, available or not; none without a bus or for a stanza that came
// over it.
func (r *Router) AccountNodes(ctx context.Context, bare jid.JID) []string {
	if r.srv.Bus == nil || fromBus(ctx) {
		return nil
	}
	rs, err := r.srv.registry.Resources(ctx, bare.String())
	if err != nil {
		r.srv.log.Warn("session registry", "jid", bare.String(), "err", err)
		return nil
	}
	var nodes []string
	for _, rm := range rs {
		if rm.Node != r.srv.node && !slices.Contains(nodes, rm.Node) {
			nodes = append(nodes, rm.Node)
		}
	}
	return nodes
}
