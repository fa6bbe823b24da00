package pep

import (
	"context"
	"maps"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// A watcher is one entity's interest in notifications: a local session, or
// a contact's resource on another server that sent an account presence.
// It comes from the capabilities of its last available presence
// (XEP-0163 §4.4).
type watcher struct {
	mu    sync.Mutex
	key   capsKey
	in    interest // nil until the capabilities are known
	known bool
}

// wants reports whether w asked for notifications of node.
func (w *watcher) wants(node string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.known && w.in[node]
}

// update records the capabilities a new available presence announces
// (ok false: none); it returns whether they changed, and the interest
// before.
func (w *watcher) update(k capsKey, ok bool) (changed bool, prev interest) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !ok {
		w.key, w.in, w.known = capsKey{}, nil, false
		return false, nil
	}
	if w.key == k {
		return false, nil
	}
	prev = w.in
	w.key, w.in, w.known = k, nil, false
	return true, prev
}

// learn sets the interest of k, unless the capabilities changed again
// meanwhile; false then.
func (w *watcher) learn(k capsKey, in interest) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.key != k || w.known {
		return false
	}
	w.in, w.known = in, true
	return true
}

// remotes are the resources of other servers that sent each local account
// available presence, by account and full JID.
type remotes struct {
	mu sync.Mutex
	m  map[string]map[string]*watcher
}

// maxRemotePerAccount bounds the remote resources tracked for one account.
const maxRemotePerAccount = 1000

func (r *remotes) get(owner, full string, create bool) *watcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.m[owner][full]
	if w != nil || !create {
		return w
	}
	if r.m == nil {
		r.m = make(map[string]map[string]*watcher)
	}
	if r.m[owner] == nil {
		r.m[owner] = make(map[string]*watcher)
	}
	if len(r.m[owner]) >= maxRemotePerAccount {
		return nil
	}
	w = &watcher{}
	r.m[owner][full] = w
	return w
}

func (r *remotes) remove(owner, full string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m[owner], full)
	if len(r.m[owner]) == 0 {
		delete(r.m, owner)
	}
}

// of returns owner's remote watchers by full JID.
func (r *remotes) of(owner string) map[string]*watcher {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.m[owner])
}

// hookPresence follows the presence of local sessions and of contacts
// elsewhere, which carries their interest, and sends the last items when
// one comes online (XEP-0163 §4.3.2, XEP-0060 send_last_published_item
// on_sub_and_presence). It watches and never handles a stanza.
func (m *Module) hookPresence(s *xmpp.Server) {
	s.Hook(xmpp.PresenceOut, 20, func(ctx context.Context, ev *xmpp.StanzaEvent) bool {
		if ev.Stanza.Get("to") == "" {
			m.sessionPresence(ctx, ev.Session, ev.Stanza)
		}
		return false
	})
	s.HookAccountRemoved(func(ctx context.Context, bare jid.JID) {
		m.forget(bare.String())
		m.changed(ctx, bare.String(), nil, nil) // the other nodes forget it too
	})
	s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) {
		m.sessions.Delete(sess)
	})
	s.Hook(xmpp.PresenceIn, 20, func(ctx context.Context, ev *xmpp.StanzaEvent) bool {
		if ev.Origin == nil {
			m.remotePresence(ctx, ev.Stanza, ev.To)
		}
		return false
	})
}

// sessionPresence follows a local session's broadcast presence.
func (m *Module) sessionPresence(ctx context.Context, sess *xmpp.Session, p *xmpp.Element) {
	switch p.Get("type") {
	case "":
	case "unavailable":
		m.sessions.Delete(sess)
		return
	default:
		return
	}
	k, capsNode, ok := capsOf(p)
	v, found := m.sessions.Load(sess)
	if !found {
		if !ok {
			return // no interest, nothing kept
		}
		v, _ = m.sessions.LoadOrStore(sess, &watcher{})
	}
	w := v.(*watcher)
	changed, prev := w.update(k, ok)
	if !changed {
		return
	}
	if in, known := m.caps.lookup(k); known {
		// Known capabilities (the common case: every client version is
		// asked once): the last items go out now, before the presence
		// is broadcast, so that nothing published meanwhile comes twice.
		if w.learn(k, in) {
			m.catchUpSession(ctx, sess, in, prev)
		}
		return
	}
	m.resolve(k, capsNode, sess.JID().String(), func(in interest) {
		if !w.learn(k, in) {
			return
		}
		m.srv.Go(func(ctx context.Context) { m.catchUpSession(ctx, sess, in, prev) })
	})
}

// catchUpSession sends a session that came online (or changed its
// interest) the last item of each node it newly wants, of its own account
// and of each local contact whose presence it gets. Contacts elsewhere do
// this themselves when the account's presence reaches them.
func (m *Module) catchUpSession(ctx context.Context, sess *xmpp.Session, in, prev interest) {
	if fresh(in, prev) == 0 {
		return
	}
	user := sess.JID().Bare().String()
	m.catchUp(ctx, user, user, sess.JID(), sess, in, prev)
	if m.Roster == nil {
		return
	}
	_, to, err := m.Roster.PresenceContacts(ctx, user)
	if err != nil {
		m.srv.Log().Warn("pep: reading roster", "jid", user, "err", err)
		return
	}
	for _, c := range to {
		if m.local(c) {
			// The account gets c's presence: c's roster gives it to it.
			m.catchUp(ctx, c, user, sess.JID(), sess, in, prev)
		}
	}
}

// fresh counts the nodes in but not in prev.
func fresh(in, prev interest) int {
	n := 0
	for k := range in {
		if !prev[k] {
			n++
		}
	}
	return n
}

func (m *Module) local(bare string) bool {
	_, domain, ok := strings.Cut(bare, "@")
	return ok && domain == m.srv.Domain
}

// catchUp sends to (via sess when local) the last item of each of owner's
// nodes that requester may see and that to newly wants; the requester
// gets owner's presence.
func (m *Module) catchUp(ctx context.Context, owner, requester string, to jid.JID, sess *xmpp.Session, in, prev interest) {
	svc, err := m.service(ctx, owner)
	if err != nil {
		m.srv.Log().Warn("pep: reading nodes", "jid", owner, "err", err)
		return
	}
	type last struct {
		n  node
		it storage.PEPItem
	}
	var send []last
	for name := range in {
		n := svc.nodes[name]
		if prev[name] || n == nil || n.last == nil || n.cfg.sendLast != sendOnSubPresence || !n.cfg.notify {
			continue
		}
		if !maySee(n, owner, requester, true) {
			continue
		}
		if it, ok := m.lastItem(ctx, owner, n); ok {
			send = append(send, last{*n, it})
		}
	}
	svc.mu.Unlock()
	for _, l := range send {
		msg := m.message(owner, &l.n, itemsEvent(l.n.name, []storage.PEPItem{l.it}, l.n.cfg.payloads))
		// When it was published (XEP-0060 §12.4: the last item, sent
		// late, carries its time).
		msg.Add(xmpp.NewElement(nsDelay, "delay", "from", owner,
			"stamp", l.it.Published.UTC().Format(time.RFC3339Nano)))
		m.srv.Router().DeliverFanout(ctx, to, sess, xmpp.NewFanout(msg))
	}
}

// maySee reports whether requester may have n's notifications, given
// whether it gets owner's presence.
func maySee(n *node, owner, requester string, subscribed bool) bool {
	if requester == owner {
		return true
	}
	switch aff := n.affs[requester]; {
	case aff == "outcast":
		return false
	case n.cfg.access == AccessOpen:
		return true
	case n.cfg.access == AccessWhitelist:
		return aff == "member" || aff == "publisher"
	}
	return subscribed
}

// remotePresence follows presence from another server to a local account:
// a contact's resource coming online there is sent the account's last
// items, and notified of new ones while it stays.
func (m *Module) remotePresence(ctx context.Context, p *xmpp.Element, to jid.JID) {
	from, err := jid.Parse(p.Get("from"))
	if err != nil || m.srv.Local(from.Domainpart()) || from.Resourcepart() == "" {
		// Local sessions are followed at their own presence; a chat
		// room's occupants are nobody's contacts.
		return
	}
	owner, full := to.Bare().String(), from.String()
	switch p.Get("type") {
	case "":
	case "unavailable", "error":
		m.remote.remove(owner, full)
		return
	default:
		return
	}
	k, capsNode, ok := capsOf(p)
	if !ok {
		m.remote.remove(owner, full)
		return
	}
	w := m.remote.get(owner, full, false)
	if w == nil {
		// Contacts only (the presence access model); a presence update
		// from a tracked resource is not checked again.
		if sub, err := m.subscribed(ctx, owner, from.Bare().String()); err != nil || !sub {
			return
		}
		w = m.remote.get(owner, full, true)
	}
	if w == nil {
		return
	}
	changed, prev := w.update(k, true)
	if !changed {
		return
	}
	requester := from.Bare().String()
	m.resolve(k, capsNode, full, func(in interest) {
		if !w.learn(k, in) || fresh(in, prev) == 0 {
			return
		}
		m.srv.Go(func(ctx context.Context) { m.catchUp(ctx, owner, requester, from, nil, in, prev) })
	})
}

// message wraps a pubsub event for n's owner (XEP-0060 §7.1.2.1); 'to' is
// set per recipient.
func (m *Module) message(owner string, n *node, ev *xmpp.Element) *xmpp.Element {
	typ := "headline"
	if n.cfg.notifHeader {
		typ = "normal"
	}
	return xmpp.NewElement(xmpp.NSClient, "message", "from", owner, "type", typ, "id", newItemID()).
		Add(xmpp.NewElement(NSEvent, "event").Add(ev))
}

// notifyHere sends f, a notification of owner's node n, to everyone with
// interest that this node serves and who may see it: the owner's sessions
// here, contacts' sessions here, and resources of other servers that sent
// the owner presence through this node (XEP-0163 §4.3). The other nodes of
// a cluster do the same with theirs (cluster.go).
func (m *Module) notifyHere(ctx context.Context, owner string, n *node, f xmpp.Fanout) {
	r := m.srv.Router()
	toSessions := func(bare string) {
		j, err := jid.Parse(bare)
		if err != nil {
			return
		}
		for _, s := range m.srv.SessionsOf(j) {
			if v, ok := m.sessions.Load(s); ok && v.(*watcher).wants(n.name) {
				r.DeliverFanout(ctx, s.JID(), s, f)
			}
		}
	}
	toSessions(owner)
	var from []string
	if n.cfg.access == AccessWhitelist {
		for j, aff := range n.affs {
			if aff == "member" || aff == "publisher" {
				from = append(from, j)
			}
		}
	} else if m.Roster != nil {
		var err error
		if from, _, err = m.Roster.PresenceContacts(ctx, owner); err != nil {
			m.srv.Log().Warn("pep: reading roster", "jid", owner, "err", err)
		}
	}
	for _, c := range from {
		if m.local(c) && maySee(n, owner, c, true) {
			toSessions(c)
		}
	}
	for full, w := range m.remote.of(owner) {
		j, err := jid.Parse(full)
		if err != nil || !w.wants(n.name) || !maySee(n, owner, j.Bare().String(), true) {
			continue
		}
		r.DeliverFanout(ctx, j, nil, f)
	}
}

// discoItems lists owner's nodes that requester may see (XEP-0060 §5.2).
func (m *Module) discoItems(ctx context.Context, owner, requester jid.JID) []xmpp.DiscoItem {
	svc, err := m.service(ctx, owner.String())
	if err != nil {
		return nil
	}
	var names []*node
	for _, n := range svc.nodes {
		c := *n
		names = append(names, &c)
	}
	svc.mu.Unlock()
	var items []xmpp.DiscoItem
	r := request{owner: owner.String(), requester: requester, isOwner: requester.Bare().Equal(owner)}
	for _, n := range names {
		if m.mayRetrieve(ctx, r, n) == nil {
			items = append(items, xmpp.DiscoItem{JID: owner.String(), Node: n.name})
		}
	}
	return items
}

// discoNode describes one of owner's nodes (XEP-0060 §5.3, §5.5): a leaf,
// and its items' ids.
func (m *Module) discoNode(ctx context.Context, owner, requester jid.JID, name string) (xmpp.DiscoNode, bool) {
	svc, err := m.service(ctx, owner.String())
	if err != nil {
		return xmpp.DiscoNode{}, false
	}
	n := svc.nodes[name]
	var snap node
	if n != nil {
		snap = *n
	}
	svc.mu.Unlock()
	r := request{owner: owner.String(), requester: requester, isOwner: requester.Bare().Equal(owner)}
	if n == nil || m.mayRetrieve(ctx, r, &snap) != nil {
		return xmpp.DiscoNode{}, false
	}
	d := xmpp.DiscoNode{
		Identities: []xmpp.Identity{{Category: "pubsub", Type: "leaf"}},
		Features:   []string{NS},
	}
	its, _ := m.Store.PEPItems(ctx, owner.String(), name, nil, 0)
	for _, it := range its {
		d.Items = append(d.Items, xmpp.DiscoItem{JID: owner.String(), Name: it.ID})
	}
	return d, true
}
