package carbons

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of this package and of the payloads it looks for.
const (
	NS = "urn:xmpp:carbons:2"
	// NSRules says that the server copies by the rules of §6.1.
	NSRules = "urn:xmpp:carbons:rules:0"
	// NSForward wraps each copy (XEP-0297).
	NSForward = "urn:xmpp:forward:0"
	// NSHints carries <no-copy/> (XEP-0334 §4.3).
	NSHints = "urn:xmpp:hints"
	// Payloads of instant messaging that make a message worth copying
	// whatever its type (XEP-0280 §6.1): chat states (XEP-0085), receipts
	// (XEP-0184) and chat markers (XEP-0333).
	NSChatStates = "http://jabber.org/protocol/chatstates"
	NSReceipts   = "urn:xmpp:receipts"
	NSMarkers    = "urn:xmpp:chat-markers:0"
)

// Priority is where the module's message hooks run: after the hooks of
// priority 0 and above, so that a filter that drops a message (a block
// list) or a module that takes it has done so before it is copied.
const Priority = -100

// Module is Message Carbons. Its zero value is ready to register.
type Module struct {
	srv *xmpp.Server
	// enabled holds the sessions that enabled carbons (*xmpp.Session →
	// struct{}). Keyed by the session, it survives a hibernation and
	// resumption (XEP-0198), which keep the session; SessionEnded drops it.
	enabled sync.Map
	// on counts the entries of enabled. While it is zero, which it is on a
	// server whose clients do not use carbons, a message costs the hooks
	// one atomic load.
	on atomic.Int64
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	// §3: the server advertises carbons, and that it copies by the rules
	// of §6.1; clients look at the server's features, some at their own
	// account's.
	s.AddFeature(xmpp.ToServer, NS)
	s.AddFeature(xmpp.ToServer, NSRules)
	s.AddFeature(xmpp.ToAccount, NS)
	// §4, §5: clients send <enable/> and <disable/> with no 'to' (or to
	// their bare JID): the account answers.
	s.HandleIQ(xmpp.ToAccount, "set", NS, "enable", m.toggle(true))
	s.HandleIQ(xmpp.ToAccount, "set", NS, "disable", m.toggle(false))
	s.Hook(xmpp.MessageOut, Priority, m.sent)
	s.Hook(xmpp.MessageIn, Priority, m.received)
	s.HandleClusterOp(opCarbon, m.fromNode)
	s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) {
		m.set(sess, false)
	})
}

// Enabled reports whether the session enabled carbons.
func (m *Module) Enabled(s *xmpp.Session) bool {
	_, ok := m.enabled.Load(s)
	return ok
}

// toggle answers <enable/> (on) or <disable/>. Asking again what is
// already so is answered with a result, not an error (§10.1).
func (m *Module) toggle(on bool) xmpp.IQHandler {
	return func(_ context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
		// §4.1, §5.1: only a client of the account itself, on this server,
		// may turn its own carbons on or off.
		if iq.Session == nil || !iq.Session.JID().Bare().Equal(iq.To.Bare()) {
			return nil, xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "carbons are for the account's own clients"}
		}
		m.set(iq.Session, on)
		return nil, nil
	}
}

// set turns carbons on or off for s, keeping the count.
func (m *Module) set(s *xmpp.Session, on bool) {
	if on {
		if _, was := m.enabled.Swap(s, struct{}{}); !was {
			m.on.Add(1)
		}
	} else if _, was := m.enabled.LoadAndDelete(s); was {
		m.on.Add(-1)
	}
}

// sent copies a message a client sends to the account's other
// carbons-enabled resources as <sent/> (§8), whether or not the sender
// enabled carbons; never back to the sender. A message to the account
// itself is not copied to the resources that get it anyway.
func (m *Module) sent(ctx context.Context, ev *xmpp.StanzaEvent) bool {
	st, from := ev.Stanza, ev.Session
	if !m.anyEnabled(ctx) || !eligible(st, false) {
		return false
	}
	bare := from.JID().Bare()
	to := bare // no 'to': to the account itself (RFC 6120 §10.3)
	if t := st.Get("to"); t != "" {
		var err error
		if to, err = jid.Parse(t); err != nil {
			return false // the router answers <jid-malformed/>
		}
	}
	m.copies(ctx, carbon{kind: "sent", account: bare, st: st, to: to, from: from.JID().String()})
	return false
}

// received copies a message to the account as <received/> to each
// carbons-enabled resource that does not get the message itself by the
// rules of RFC 6121 §8.5 (§7).
func (m *Module) received(ctx context.Context, ev *xmpp.StanzaEvent) bool {
	st := ev.Stanza
	if stripPrivate(st) {
		return false
	}
	if !m.anyEnabled(ctx) {
		return false
	}
	if ev.Origin != nil && ev.Origin.JID().Bare().Equal(ev.To.Bare()) {
		return false // from the account itself: copied when it was sent
	}
	if !eligible(st, true) {
		return false
	}
	m.copies(ctx, carbon{kind: "received", account: ev.To.Bare(), st: st, to: ev.To})
	return false
}

// anyEnabled reports whether some session may want a copy: one here that
// enabled carbons, or, on a cluster, one on another node, which only that
// node knows.
func (m *Module) anyEnabled(ctx context.Context) bool {
	return m.on.Load() > 0 || (m.srv.Clustered() && !xmpp.FromBus(ctx))
}

// A carbon is what one message is copied as: of kind "sent" or
// "received", for the account's resources, of st addressed to to; from is
// the sending session's full JID for "sent".
type carbon struct {
	kind    string
	account jid.JID
	st      *xmpp.Element
	to      jid.JID
	from    string
	// direct are the resourceparts that get st itself, once known.
	direct  []string
	settled bool
}

// wants reports whether the session s of the account gets a copy; direct
// returns the resources that get the message itself, worked out only when
// needed.
func (c *carbon) wants(s *xmpp.Session, direct func() []string) bool {
	res := s.JID().Resourcepart()
	if c.kind == "sent" {
		if s.JID().String() == c.from {
			return false
		}
		return !c.to.Bare().Equal(c.account) || !slices.Contains(direct(), res)
	}
	d := direct()
	if slices.Contains(d, res) {
		return false
	}
	if len(d) == 0 {
		// Nobody gets the message now: it goes to offline storage (or
		// back to its sender), and a session comes to it with its initial
		// presence (XEP-0160). One that has not sent presence yet would
		// get it twice.
		ok, _ := s.Available()
		return ok
	}
	return true
}

// copies delivers the carbon c to the sessions of its account that enabled
// carbons and want it, here, and on a cluster hands it to the other nodes
// on which the account has sessions, with the resources that get the
// message itself on any node, so that none gets both. Which sessions get
// the message is worked out only when a session here has carbons on (most
// accounts have none) or the account has sessions on other nodes.
func (m *Module) copies(ctx context.Context, c carbon) {
	var nodes []string
	clustered := m.srv.Clustered() && !xmpp.FromBus(ctx)
	direct := func() []string {
		if !c.settled {
			reach := m.srv.Router().Reach(ctx, c.to, c.st)
			c.direct, c.settled = reach.Direct, true
			if c.to.Bare().Equal(c.account) {
				nodes = reach.Nodes
			}
		}
		return c.direct
	}
	m.deliver(ctx, &c, direct)
	if !clustered {
		return
	}
	if c.to.Bare().Equal(c.account) {
		direct()
	} else {
		nodes = m.srv.Router().AccountNodes(ctx, c.account)
	}
	if len(nodes) == 0 {
		return
	}
	op := c.op(direct())
	for _, n := range nodes {
		m.srv.SendClusterOp(ctx, n, op)
	}
}

// deliver gives the local sessions of the account that want c their copy.
func (m *Module) deliver(ctx context.Context, c *carbon, direct func() []string) {
	if m.on.Load() == 0 {
		return
	}
	var cc *xmpp.Element
	m.srv.Router().DeliverEach(ctx, c.account, func(s *xmpp.Session) *xmpp.Element {
		if !m.Enabled(s) || !c.wants(s, direct) {
			return nil
		}
		if cc == nil {
			cc = wrap(c.kind, c.account, c.st)
		}
		return cc
	})
}

// opCarbon hands a carbon to another node of a cluster, for the account's
// sessions there: <carbon kind account to from><direct>resource</direct>...
// and the message itself.
const opCarbon = "carbon"

// op makes the cluster operation that carries c, with the resources that
// get the message itself.
func (c *carbon) op(direct []string) *xmpp.Element {
	op := xmpp.NewElement(xmpp.NSCluster, opCarbon, "kind", c.kind, "account", c.account.String(), "to", c.to.String())
	if c.from != "" {
		op.Set("from", c.from)
	}
	for _, d := range direct {
		op.Add(xmpp.NewElement(xmpp.NSCluster, "direct").Add(xmpp.Text(d)))
	}
	return op.Add(c.st)
}

// fromNode delivers a carbon another node handed over (opCarbon) to the
// account's sessions here.
func (m *Module) fromNode(ctx context.Context, op *xmpp.Element) {
	st := op.Child(xmpp.NSClient, "message")
	account, err1 := jid.Parse(op.Get("account"))
	to, err2 := jid.Parse(op.Get("to"))
	kind := op.Get("kind")
	if st == nil || err1 != nil || err2 != nil || (kind != "sent" && kind != "received") {
		m.srv.Log().Warn("carbons: a malformed copy from another node", "kind", kind, "account", op.Get("account"))
		return
	}
	c := carbon{kind: kind, account: account.Bare(), st: st, to: to, from: op.Get("from"), settled: true}
	for _, d := range op.Elements() {
		if d.Space == xmpp.NSCluster && d.Local == "direct" {
			c.direct = append(c.direct, d.Text())
		}
	}
	m.deliver(ctx, &c, func() []string { return c.direct })
}

// wrap makes the copy of st for the account bare: a message from the bare
// JID, of st's type, with st forwarded in a <sent/> or <received/> (§7,
// §8). The copy of st shares its children, which nobody changes.
func wrap(kind string, bare jid.JID, st *xmpp.Element) *xmpp.Element {
	c := xmpp.NewElement(xmpp.NSClient, "message", "from", bare.String())
	if t := st.Get("type"); t != "" {
		c.Set("type", t)
	}
	fwd := xmpp.NewElement(NSForward, "forwarded").Add(st.ShallowCopy())
	return c.Add(xmpp.NewElement(NS, kind).Add(fwd))
}

// stripPrivate removes <private/> from a message to the account, which
// the receiving server SHOULD do (§9), and reports whether there was one:
// such a message is not copied. The stanza gets a new list of children;
// the old one, which others may hold, is not changed.
func stripPrivate(st *xmpp.Element) bool {
	i := slices.IndexFunc(st.Children, func(n xmpp.Node) bool {
		el, ok := n.(*xmpp.Element)
		return ok && el.Space == NS && el.Local == "private"
	})
	if i < 0 {
		return false
	}
	st.Children = slices.Delete(slices.Clone(st.Children), i, i+1)
	return true
}

// eligible tells whether a message is one of instant messaging, which
// carbons copy, by the rules XEP-0280 §6.1 recommends; inbound is true for
// a message to the account, false for one it sends.
func eligible(st *xmpp.Element, inbound bool) bool {
	typ := st.Get("type")
	switch typ {
	case "groupchat":
		return false // the room sends it to every joined client (§6.1)
	case "error":
		// §6.1 would copy an error to a copied message, which needs
		// tracking what was copied; none are.
		return false
	}
	imPayload, body, invitation := false, false, false
	for _, c := range st.Elements() {
		switch c.Space {
		case NS:
			// <private/> (§9), or a carbon itself: never copied again.
			return false
		case NSHints:
			if c.Local == "no-copy" {
				return false // XEP-0334 §4.3: not copied to other addresses
			}
		case xmpp.NSClient:
			body = body || c.Local == "body"
		case NSChatStates, NSReceipts, NSMarkers:
			imPayload = true
		case muc.NSConference:
			invitation = true // a direct invitation (XEP-0249)
		case muc.NSUser:
			if c.Child(muc.NSUser, "invite") != nil {
				invitation = true // a mediated invitation (XEP-0045 §7.8.2)
				continue
			}
			if inbound {
				// A private message from an occupant: the room sends it
				// to each of the user's clients that joined (§6.1).
				return false
			}
		}
	}
	switch {
	case invitation, imPayload, typ == "chat":
		return true
	case typ == "" || typ == "normal":
		return body
	}
	return false
}
