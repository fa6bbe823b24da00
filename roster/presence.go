package roster

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// presence builds a presence stanza from → to of type typ ("" for
// available).
func presence(from jid.JID, to, typ string) *xmpp.Element {
	p := xmpp.NewElement(xmpp.NSClient, "presence", "from", from.String(), "to", to)
	if typ != "" {
		p.Set("type", typ)
	}
	return p
}

// route hands a stanza the server generated to the router.
func (m *Module) route(ctx context.Context, el *xmpp.Element) {
	m.srv.Router().Route(ctx, el, nil)
}

// addressed returns a copy of a broadcast presence with 'to' set.
func addressed(p *xmpp.Element, to string) *xmpp.Element {
	c := p.ShallowCopy()
	c.Set("to", to)
	return c
}

// OutboundPresence implements xmpp.PresenceHandler: presence sent by a
// local client (RFC 6121 §3, §4).
func (m *Module) OutboundPresence(ctx context.Context, s *xmpp.Session, p *xmpp.Element, wasAvailable bool) {
	typ := p.Get("type")
	to := p.Get("to")
	if to == "" {
		switch typ {
		case "":
			m.broadcastAvailable(ctx, s, p, !wasAvailable)
		case "unavailable":
			m.broadcastUnavailable(ctx, s, m.state(s), p, wasAvailable)
		default:
			// Subscriptions and probes need an addressee.
			m.reply(ctx, p, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "presence of type " + typ + " needs a 'to'"})
		}
		return
	}
	tj, err := jid.Parse(to)
	if err != nil {
		m.reply(ctx, p, xmpp.StanzaError{Condition: xmpp.JIDMalformed})
		return
	}
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		m.outboundSubscription(ctx, s, p, tj.Bare(), typ)
	case "probe":
		// Probes are the server's business (§4.3); one from a client is
		// sent on its account's behalf.
		p.Set("from", s.JID().Bare().String())
		m.srv.Router().Route(ctx, p, s)
	case "", "unavailable":
		if !m.directed(ctx, s, p, tj, typ == "") {
			// RFC 6121 §4.6.3 has the server deliver directed presence,
			// and §4.5.2 send unavailable later to every entity that got
			// it, which means remembering each one. Delivering without remembering
			// would break the second MUST, and remembering without bound
			// lets one session hold any amount of memory; so past the
			// limit the stanza is refused whole and the client told why
			// (RFC 6120 §8.3.3.12): it can send unavailable to someone
			// and try again.
			m.reply(ctx, p, xmpp.StanzaError{Condition: xmpp.PolicyViolationCond,
				Text: "this session has sent directed presence to " + strconv.Itoa(m.MaxDirected) +
					" entities, the most it may; send unavailable presence to one of them first"})
			return
		}
		m.srv.Router().Route(ctx, p, s)
	case "error":
		m.srv.Router().Route(ctx, p, s)
	default:
		m.reply(ctx, p, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "unknown presence type"})
	}
}

// directed tracks directed presence (RFC 6121 §4.6): an entity that got
// available presence from an available resource, and is not a subscriber,
// gets that resource's unavailable presence too. It returns false, and
// tracks nothing, when the presence would add an entity past MaxDirected.
func (m *Module) directed(ctx context.Context, s *xmpp.Session, p *xmpp.Element, to jid.JID, available bool) bool {
	st := m.state(s)
	key := to.String()
	if !available {
		st.mu.Lock()
		delete(st.directed, key)
		st.mu.Unlock()
		return true
	}
	if ok, _ := s.Available(); !ok {
		// Not tracked, so not bounded either: a resource that never was
		// available owes nobody unavailable presence.
		return true
	}
	owner := s.JID().Bare().String()
	if to.Bare().String() == owner {
		return true
	}
	// Read the roster without holding the session's lock.
	if it, err := m.lookup(ctx, owner, to.Bare().String()); err == nil && it.hasFrom() {
		return true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.directed[key] {
		return true // an update to an entity already tracked
	}
	if m.MaxDirected > 0 && len(st.directed) >= m.MaxDirected {
		return false
	}
	if st.directed == nil {
		st.directed = make(map[string]bool)
	}
	st.directed[key] = true
	return true
}

// DirectedPresences returns how many entities the session is tracked as
// having sent directed available presence to (RFC 6121 §4.6), for whom it
// owes unavailable presence when it goes.
func (m *Module) DirectedPresences(s *xmpp.Session) int {
	v, ok := m.sessions.Load(s)
	if !ok {
		return 0
	}
	st := v.(*sessionState)
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.directed)
}

// subscribers returns the contacts that receive owner's presence.
func (m *Module) subscribers(ctx context.Context, owner string) []string {
	from, _, err := m.presenceContacts(ctx, owner)
	if err != nil {
		m.warn(ctx, "reading roster", "jid", owner, "err", err)
	}
	return from
}

// Subscribers returns the contacts that receive owner's presence
// (subscription from or both, shared groups included), bare JIDs as the
// roster holds them: for a module that must tell them of a change it makes
// (a block list sending unavailable presence, XEP-0191 §3.3).
func (m *Module) Subscribers(ctx context.Context, owner string) []string {
	return m.subscribers(ctx, owner)
}

// broadcastAvailable handles available presence without 'to' (RFC 6121
// §4.2, §4.4): to the subscribers and the account's own available resources;
// the initial one also probes the contacts and catches the new resource up.
func (m *Module) broadcastAvailable(ctx context.Context, s *xmpp.Session, p *xmpp.Element, initial bool) {
	full := s.JID()
	owner := full.Bare().String()
	_, prio := s.Available() // parsed once, by the core
	err := m.srv.Registry().SetResource(ctx, owner, storage.Resource{
		Resource: full.Resourcepart(), Node: m.srv.Node(), Available: true, Priority: prio,
		Presence: p.Bytes(""), // with its xmlns, so that it parses back whole
	})
	if err != nil {
		m.warn(ctx, "presence registry", "jid", full.String(), "err", err)
	}
	f := xmpp.NewFanout(p)
	m.setPresence(owner, full.Resourcepart(), &f)
	from, to, err := m.presenceContacts(ctx, owner)
	if err != nil {
		m.warn(ctx, "reading roster", "jid", owner, "err", err)
	}
	for _, c := range from {
		m.broadcastTo(ctx, p, f, c)
	}
	// Every available resource of the account, the sender included (§4.2.2),
	// on other nodes of a cluster too.
	m.srv.Router().DeliverEach(ctx, full.Bare(), func(o *xmpp.Session) *xmpp.Element {
		if ok, _ := o.Available(); ok {
			return p
		}
		return nil
	})
	if m.srv.Bus != nil {
		m.srv.Router().ToOtherNodes(ctx, owner, addressed(p, owner))
	}
	if !initial {
		return
	}
	probeFrom := full.Bare()
	slices.Sort(to) // the new session gets its contacts in roster order
	fullStr := full.String()
	for _, c := range to {
		if !m.presenceOfLocal(ctx, s, owner, fullStr, c) {
			m.route(ctx, presence(probeFrom, c, "probe"))
		}
	}
	// The new resource learns about the account's other resources.
	rs, err := m.srv.Registry().Resources(ctx, owner)
	if err != nil {
		m.warn(ctx, "presence registry", "jid", owner, "err", err)
	}
	for _, r := range rs {
		if r.Resource == full.Resourcepart() {
			continue
		}
		if last, ok := m.resourcePresence(owner, r); ok {
			m.srv.Router().DeliverFanout(ctx, full, s, last)
		}
	}
	// Subscription requests not yet answered, again at each login (§3.1.3).
	stored, err := m.stored(ctx, owner)
	if err != nil {
		m.warn(ctx, "reading roster", "jid", owner, "err", err)
	}
	var pending []string
	for c, it := range stored {
		if it.PendingIn {
			pending = append(pending, c)
		}
	}
	slices.Sort(pending) // in the order of the roster, as clients list them
	for _, contact := range pending {
		if c, err := jid.Parse(contact); err == nil {
			m.srv.Router().Deliver(ctx, presence(c, full.String(), "subscribe"))
		}
	}
}

// Rebroadcast sends the available session s's current broadcast presence
// again, as change makes it from the one s last sent, to whoever got that
// one: its subscribers and the account's available resources (RFC 6121
// §4.4). It is for a module that changes what the server adds to s's
// presence: the avatar hash of XEP-0153, when the account's vCard photo
// changes. change gets a copy sharing the children, which it must not
// modify (it replaces them instead); nothing is sent when s is not
// available or change returns nil. Directed presence is not sent again.
// It runs on the caller's goroutine, not s's: presence s sends at the same
// moment may be broadcast before or after it.
func (m *Module) Rebroadcast(ctx context.Context, s *xmpp.Session, change func(p *xmpp.Element) *xmpp.Element) {
	if ok, _ := s.Available(); !ok {
		return
	}
	owner := s.JID().Bare().String()
	a := m.account(owner)
	if a == nil {
		return
	}
	a.mu.Lock()
	f, ok := a.presence[s.JID().Resourcepart()]
	a.mu.Unlock()
	if !ok {
		return
	}
	p := change(f.Element(""))
	if p == nil {
		return
	}
	m.broadcastAvailable(ctx, s, p, false)
}

// setPresence keeps the last broadcast presence of owner's resource here,
// serialised once, or forgets it (f nil).
func (m *Module) setPresence(owner, resource string, f *xmpp.Fanout) {
	a := m.account(owner)
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if f == nil {
		delete(a.presence, resource)
		return
	}
	if a.presence == nil {
		a.presence = make(map[string]xmpp.Fanout)
	}
	a.presence[resource] = *f
}

// resourcePresence is the broadcast presence of owner's resource r, false
// when r is not available: for a resource here the one it sent, kept
// serialised by setPresence, else parsed from the registry's copy.
func (m *Module) resourcePresence(owner string, r storage.Resource) (xmpp.Fanout, bool) {
	if !r.Available || r.Presence == nil {
		return xmpp.Fanout{}, false
	}
	if r.Node == m.srv.Node() {
		if a := m.account(owner); a != nil {
			a.mu.Lock()
			f, ok := a.presence[r.Resource]
			a.mu.Unlock()
			if ok {
				return f, true
			}
		}
	}
	p, err := xmpp.ParseElement(r.Presence)
	if err != nil {
		return xmpp.Fanout{}, false
	}
	p.Set("to", "") // NewFanout wants none; the registry's copy has none
	return xmpp.NewFanout(p), true
}

// local reports whether the bare JID is an account of this server.
func (m *Module) local(bare string) bool {
	_, domain, ok := strings.Cut(bare, "@")
	return ok && domain == m.srv.Domain
}

// broadcastTo sends the broadcast presence p (f, serialised once) to a
// contact: to its available resources here directly, which is what the
// roster's PresenceIn hook would do with it (§4.2.2, §8.5.2.1.1), with
// each copy spliced from f instead of routed, parsed and serialised anew:
// in a team of n a sign-in is n of these. To a contact of another server,
// it is routed.
func (m *Module) broadcastTo(ctx context.Context, p *xmpp.Element, f xmpp.Fanout, contact string) {
	if m.local(contact) {
		m.srv.Router().DeliverFanoutEach(ctx, contact, f, func(s *xmpp.Session) bool {
			ok, _ := s.Available()
			return ok
		})
		if m.srv.Bus != nil {
			// The contact's sessions on other nodes of a cluster.
			m.srv.Router().ToOtherNodes(ctx, contact, addressed(p, contact))
		}
		return
	}
	m.route(ctx, addressed(p, contact))
}

// presenceOfLocal answers, for a contact of this server, the probe the new
// session s would send it (RFC 6121 §4.2.2, §4.3.2) without sending one:
// the contact's available resources, read from the registry, are
// delivered to s alone (the account's other resources have them), and a
// contact with none gets s its unavailable presence, as the probe's answer
// would. In a team of n that is n probes and their routing fewer per
// login, and no storage read for the members who are offline. False when
// the probe must go out after all: the contact is elsewhere, or, online,
// does not give the account its presence (the probe's <unsubscribed/>
// answer then repairs the account's item).
//
// owner and full are s's bare and full JIDs, as strings made once for all
// the contacts.
func (m *Module) presenceOfLocal(ctx context.Context, s *xmpp.Session, owner, full, contact string) bool {
	if !m.local(contact) {
		return false
	}
	rs, err := m.srv.Registry().Resources(ctx, contact)
	if err != nil {
		return false
	}
	checked := false
	for _, r := range rs {
		f, ok := m.resourcePresence(contact, r)
		if !ok {
			continue
		}
		if !checked {
			if it, err := m.lookup(ctx, contact, owner); err != nil || !it.hasFrom() {
				return false
			}
			checked = true
		}
		m.srv.Router().DeliverFanout(ctx, s.JID(), s, f)
	}
	if !checked {
		// None available (§4.3.2): unavailable from the bare JID, which
		// the roster holds normalised already.
		m.srv.Router().DeliverSession(ctx, s, xmpp.NewElement(xmpp.NSClient, "presence",
			"from", contact, "to", full, "type", "unavailable"))
	}
	return true
}

// broadcastUnavailable handles unavailable presence without 'to', or its
// stand-in when a session ends without one (RFC 6121 §4.5): to the
// subscribers, the account's other available resources, and everyone that
// got directed presence.
func (m *Module) broadcastUnavailable(ctx context.Context, s *xmpp.Session, st *sessionState, p *xmpp.Element, was bool) {
	st.mu.Lock()
	directed := st.directed
	st.directed = nil
	st.mu.Unlock()
	full := s.JID()
	owner := full.Bare().String()
	err := m.srv.Registry().SetResource(ctx, owner, storage.Resource{Resource: full.Resourcepart(), Node: m.srv.Node()})
	if err != nil {
		m.warn(ctx, "presence registry", "jid", full.String(), "err", err)
	}
	m.setPresence(owner, full.Resourcepart(), nil)
	if !was {
		// Unavailable from a resource that never was available tells
		// nobody anything new (§4.5.1), except its directed recipients.
		for to := range directed {
			m.route(ctx, addressed(p, to))
		}
		return
	}
	sent := make(map[string]bool)
	f := xmpp.NewFanout(p)
	for _, c := range m.subscribers(ctx, owner) {
		sent[c] = true
		m.broadcastTo(ctx, p, f, c)
	}
	for to := range directed {
		if !sent[to] {
			m.route(ctx, addressed(p, to))
		}
	}
	m.srv.Router().DeliverEach(ctx, full.Bare(), func(o *xmpp.Session) *xmpp.Element {
		if ok, _ := o.Available(); ok && o != s {
			return p
		}
		return nil
	})
	if m.srv.Bus != nil {
		m.srv.Router().ToOtherNodes(ctx, owner, addressed(p, owner))
	}
}

// sendPresenceTo sends the current presence of each of owner's available
// resources to a contact, or unavailable from the bare JID when none is
// available and unavailableIfNone is set.
func (m *Module) sendPresenceTo(ctx context.Context, owner, to string, unavailableIfNone bool) {
	rs, err := m.srv.Registry().Resources(ctx, owner)
	if err != nil {
		m.warn(ctx, "presence registry", "jid", owner, "err", err)
	}
	sent := false
	for _, r := range rs {
		if f, ok := m.resourcePresence(owner, r); ok {
			m.route(ctx, f.Element(to))
			sent = true
		}
	}
	if !sent && unavailableIfNone {
		ob, _ := jid.Parse(owner)
		m.route(ctx, presence(ob, to, "unavailable"))
	}
}

// sendUnavailableTo tells a contact that lost its subscription that every
// resource of owner is gone (RFC 6121 §3.2.2, §3.3.3).
func (m *Module) sendUnavailableTo(ctx context.Context, owner, to string) {
	rs, err := m.srv.Registry().Resources(ctx, owner)
	if err != nil {
		m.warn(ctx, "presence registry", "jid", owner, "err", err)
	}
	for _, r := range rs {
		if !r.Available {
			continue
		}
		f, err := jid.Parse(owner + "/" + r.Resource)
		if err == nil {
			m.route(ctx, presence(f, to, "unavailable"))
		}
	}
}

// deliver sends a stanza to every available resource of owner.
func (m *Module) deliver(ctx context.Context, owner string, el *xmpp.Element) {
	ob, err := jid.Parse(owner)
	if err != nil {
		return
	}
	m.deliverTo(ctx, ob, el)
}

// deliverTo is deliver for an owner already parsed: presence to an
// account, the hottest path of a team signing in, parses each JID once.
// On a cluster the account's available resources on the other nodes get
// it too (the roster's PresenceIn hook took it from the router, which
// would have sent it there): a subscription request, or presence from
// another server that came in on this node's federation link.
func (m *Module) deliverTo(ctx context.Context, ob jid.JID, el *xmpp.Element) {
	m.deliverHere(ctx, ob, el)
	if m.srv.Bus != nil {
		m.srv.Router().ToOtherNodes(ctx, ob.String(), addressed(el, ob.String()))
	}
}

// deliverHere sends a stanza to every available resource of ob on this
// node alone: what each node does for its own sessions (the group watch).
func (m *Module) deliverHere(ctx context.Context, ob jid.JID, el *xmpp.Element) {
	m.srv.Router().DeliverEach(ctx, ob, func(s *xmpp.Session) *xmpp.Element {
		if ok, _ := s.Available(); ok {
			return el
		}
		return nil
	})
}

// reply answers a stanza from a local client with an error, from its
// addressee.
func (m *Module) reply(ctx context.Context, st *xmpp.Element, e xmpp.StanzaError) {
	m.srv.Router().Deliver(ctx, xmpp.ErrorReply(st, e))
}

// InboundPresence implements xmpp.PresenceHandler: presence addressed to a
// local account (RFC 6121 §3, §4.3, §4.4.3, §8.5).
func (m *Module) InboundPresence(ctx context.Context, p *xmpp.Element, to jid.JID, origin *xmpp.Session) {
	typ := p.Get("type")
	from, err := jid.Parse(p.Get("from"))
	if err != nil {
		return
	}
	switch typ {
	case "subscribe", "subscribed", "unsubscribe", "unsubscribed":
		m.inboundSubscription(ctx, p, to.Bare(), from.Bare(), typ)
	case "probe":
		m.answerProbe(ctx, to.Bare(), from)
	default:
		if to.Resourcepart() != "" {
			// §8.5.3: to that resource if it exists, here or on another
			// node of a cluster, else nowhere.
			if m.srv.SessionOf(to) != nil || m.srv.Bus == nil {
				m.srv.Router().Deliver(ctx, p)
				return
			}
			c := p.ShallowCopy()
			c.Set("to", "") // a fanout is addressed as it is delivered
			m.srv.Router().DeliverFanout(ctx, to, nil, xmpp.NewFanout(c))
			return
		}
		m.deliverTo(ctx, to, p)
	}
}

// answerProbe answers a probe from a contact (RFC 6121 §4.3.2): with the
// presence of each available resource when the contact is subscribed, with
// unavailable when none is, and with unsubscribed when it is not subscribed.
func (m *Module) answerProbe(ctx context.Context, ob jid.JID, from jid.JID) {
	owner := ob.String()
	prober := from.Bare().String()
	if prober != owner {
		// An account with sessions here exists; others are looked up.
		if m.account(owner) == nil && !m.srv.AccountExists(ctx, owner) {
			m.route(ctx, presence(ob, from.String(), "unsubscribed"))
			return
		}
		it, err := m.lookup(ctx, owner, prober)
		if err != nil {
			m.warn(ctx, "reading roster", "jid", owner, "err", err)
			return
		}
		if !it.hasFrom() {
			m.route(ctx, presence(ob, from.String(), "unsubscribed"))
			return
		}
	}
	m.sendPresenceTo(ctx, owner, from.String(), true)
}
