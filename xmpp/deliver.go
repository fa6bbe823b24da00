package xmpp

import (
	"context"

	"mellium.im/xmpp/jid"
)

// The Router is the one deliverer (docs/ARCHITECTURE.md): every stanza that
// reaches a local session goes through deliver, which runs the Deliver
// stage and queues it. Modules hand stanzas to the methods below and never
// write to sessions themselves.

// deliver queues st for the local session s, after the Deliver hooks;
// false when s is gone.
func (r *Router) deliver(ctx context.Context, s *Session, st *Element) bool {
	if !r.srv.hooks.has(Deliver) {
		return send(s, st, st.Bytes(NSClient))
	}
	ev := newEvent()
	defer ev.free()
	ev.Stanza, ev.Session, ev.To = st, s, s.jid
	if r.srv.hooks.runStanza(ctx, Deliver, ev) {
		return true
	}
	return send(s, ev.Stanza, ev.Stanza.Bytes(NSClient))
}

// send queues b, the stanza st serialised, for s: presence may wait a
// little to share a write with what follows (Server.PresenceLinger).
func send(s *Session, st *Element, b []byte) bool {
	var ok bool
	if st.Local == "presence" {
		ok = s.sendPresence(b)
	} else {
		ok = s.sendBytes(b)
	}
	if m := s.srv.Metrics; m != nil && ok {
		if k, stanza := kindOf(st.Local); stanza {
			m.StanzaOut(k)
		}
	}
	return ok
}

// deliverFanout is deliver for a stanza serialised once for many: without
// Deliver hooks, the session's copy is spliced from the shared bytes.
func (r *Router) deliverFanout(ctx context.Context, s *Session, f Fanout) bool {
	if !r.srv.hooks.has(Deliver) {
		return send(s, f.el, f.For(s.full))
	}
	ev := newEvent()
	defer ev.free()
	ev.Stanza, ev.Session, ev.To, ev.fanout, ev.isFanout = f.el, s, s.jid, f, true
	if r.srv.hooks.runStanza(ctx, Deliver, ev) {
		return true
	}
	if ev.replaced {
		return send(s, ev.Stanza, ev.Stanza.Bytes(NSClient))
	}
	return send(s, f.el, f.For(s.full))
}

// Deliver hands st to the local session bound to its 'to', a full JID,
// without the routing rules of RFC 6121: for a module answering or
// pushing to a resource it knows (a roster push, stored messages, an error
// to the sender). False when there is no such session.
func (r *Router) Deliver(ctx context.Context, st *Element) bool {
	to, err := jid.Parse(st.Get("to"))
	if err != nil || to.Resourcepart() == "" {
		return false
	}
	s := r.session(to)
	if s == nil {
		return false
	}
	return r.deliver(ctx, s, st)
}

// DeliverEach offers every local session of the account bare to pick, which
// returns the stanza that session gets (its 'to' is set to the session's
// full JID) or nil for none: presence broadcast to the account's available
// resources, roster pushes to the resources that asked for the roster. It
// returns how many got one.
func (r *Router) DeliverEach(ctx context.Context, bare jid.JID, pick func(*Session) *Element) int {
	n := 0
	for _, s := range r.sessions(bare.String()) {
		st := pick(s)
		if st == nil {
			continue
		}
		if st.Get("to") != s.full {
			st = st.ShallowCopy()
			st.Set("to", s.full)
		}
		if r.deliver(ctx, s, st) {
			n++
		}
	}
	return n
}

// DeliverFanoutEach delivers f to each local session of the account bare
// (a bare JID as a string, as rosters hold them) that pick accepts, each
// copy spliced from the bytes serialised once: a presence broadcast to a
// team's members. It returns how many got it.
func (r *Router) DeliverFanoutEach(ctx context.Context, bare string, f Fanout, pick func(*Session) bool) int {
	n := 0
	for _, s := range r.sessions(bare) {
		if pick(s) && r.deliverFanout(ctx, s, f) {
			n++
		}
	}
	return n
}

// DeliverFanout delivers f to the full JID to: through via when the caller
// knows its session (a chat room its occupant's), else the local session
// bound to to, else the node of the cluster that holds it, else, for an
// address on another server, through federation. False when there is
// nobody to deliver to.
func (r *Router) DeliverFanout(ctx context.Context, to jid.JID, via *Session, f Fanout) bool {
	if via == nil {
		via = r.session(to)
	}
	if via != nil {
		return r.deliverFanout(ctx, via, f)
	}
	if to.Domainpart() == r.srv.Domain {
		// A session on another node of the cluster, if any.
		return r.toRemoteFull(ctx, f.Element(to.String()), to)
	}
	// The router takes the stanza to federation, whose writer serialises
	// it.
	r.Route(ctx, f.Element(to.String()), nil)
	return true
}

// DeliverSession hands st, as it is, to the session s that a hook was given
// (stored messages to the session that just became available).
func (r *Router) DeliverSession(ctx context.Context, s *Session, st *Element) bool {
	return r.deliver(ctx, s, st)
}

// DeliverHeld queues st for s without the Deliver hooks: for the hook that
// held it back (client state indication) when it lets it go.
func (r *Router) DeliverHeld(s *Session, st *Element) bool {
	ok := s.sendBytes(st.Bytes(NSClient))
	if m := r.srv.Metrics; m != nil && ok {
		if k, stanza := kindOf(st.Local); stanza {
			m.StanzaOut(k)
		}
	}
	return ok
}

// maxRouteDepth is how deeply stanzas that the server and its components
// make may cause one another within one call.
const maxRouteDepth = 8

type routeDepthKey struct{}

// deeper counts one more nested hand-over to a component in ctx; false
// past maxRouteDepth.
func deeper(ctx context.Context) (context.Context, bool) {
	d, _ := ctx.Value(routeDepthKey{}).(int)
	if d >= maxRouteDepth {
		return ctx, false
	}
	return context.WithValue(ctx, routeDepthKey{}, d+1), true
}

// sameDomain reports whether the JID from is at domain: a component
// addressing itself through the router, which nothing needs.
func sameDomain(from, domain string) bool {
	fj, err := jid.Parse(from)
	return err == nil && fj.Domainpart() == domain
}

// SessionsOf returns the local sessions of the account bare, for
// administration and tests: what a session offers is read-only (JID,
// presence, Close), and modules deliver through the methods above.
func (s *Server) SessionsOf(bare jid.JID) []*Session {
	return append([]*Session(nil), s.router.sessions(bare.String())...)
}

// SessionOf returns the local session bound to the full JID, or nil.
func (s *Server) SessionOf(full jid.JID) *Session { return s.router.session(full) }

// EndSessions closes the local sessions of the account bare, except keep
// (which may be nil), with the stream error se: after the account is
// deleted or its password changes, what signed in with the old credentials
// no longer may (RFC 6120 §4.9.3.13 <not-authorized/>). It returns how many
// it closed. Sessions of the account on other nodes are not reached.
func (s *Server) EndSessions(bare jid.JID, se StreamError, keep *Session) int {
	n := 0
	for _, sess := range s.router.sessions(bare.Bare().String()) {
		if sess == keep {
			continue
		}
		sess.Close(&se)
		n++
	}
	return n
}
