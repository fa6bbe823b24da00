package xmpp

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
)

// The Router is the one place that decides where a stanza goes (RFC 6120
// §10, RFC 6121 §8): to a local session, to the server's own handlers, or
// back to its sender as an error. Sessions are kept in shards by bare JID so
// that routing takes no global lock.
type Router struct {
	srv    *Server
	seed   maphash.Seed
	shards [64]routerShard
	// requests wait for answers to the server's own IQs (request.go).
	requests requests
}

type routerShard struct {
	mu       sync.RWMutex
	accounts map[string][]*Session // bare JID → its sessions
}

func newRouter(s *Server) *Router {
	r := &Router{srv: s, seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].accounts = make(map[string][]*Session)
	}
	return r
}

func (r *Router) shard(bare string) *routerShard {
	return &r.shards[maphash.String(r.seed, bare)%uint64(len(r.shards))]
}

// register adds a session and returns the one it replaces (same full JID).
// A new resource beyond max sessions of the account (max of zero or less:
// no limit), counting elsewhere, the sessions it has on other nodes, is not
// added: ok is false.
func (r *Router) register(s *Session, max, elsewhere int) (replaced *Session, ok bool) {
	sh := r.shard(s.bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.accounts[s.bare]
	for i, o := range list {
		if o.full == s.full {
			next := append([]*Session(nil), list...)
			next[i] = s
			sh.accounts[s.bare] = next
			return o, true
		}
	}
	if max > 0 && len(list)+elsewhere >= max {
		return nil, false
	}
	// Copy on write: readers may hold the old slice without a lock.
	sh.accounts[s.bare] = append(append([]*Session(nil), list...), s)
	return nil, true
}

func (r *Router) unregister(s *Session) {
	sh := r.shard(s.bare)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	list := sh.accounts[s.bare]
	for i, o := range list {
		if o == s {
			next := append(append([]*Session(nil), list[:i]...), list[i+1:]...)
			if len(next) == 0 {
				delete(sh.accounts, s.bare)
			} else {
				sh.accounts[s.bare] = next
			}
			return
		}
	}
}

// sessions returns the sessions of a bare JID; the slice must not be
// changed.
func (r *Router) sessions(bare string) []*Session {
	sh := r.shard(bare)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.accounts[bare]
}

// session returns the session bound to a full JID, or nil.
func (r *Router) session(full jid.JID) *Session {
	f := full.String()
	for _, s := range r.sessions(full.Bare().String()) {
		if s.full == f {
			return s
		}
	}
	return nil
}

func (r *Router) each(fn func(*Session)) {
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		var all []*Session
		for _, list := range sh.accounts {
			all = append(all, list...)
		}
		sh.mu.RUnlock()
		for _, s := range all {
			fn(s)
		}
	}
}

// Route delivers a stanza whose 'from' is already stamped. origin is the
// session it came from, or nil when the server itself sends it.
func (r *Router) Route(ctx context.Context, st *Element, origin *Session) {
	to := st.Get("to")
	if to == "" {
		r.toSelf(ctx, st, origin)
		return
	}
	tj, err := ParseAddress(to)
	if err != nil {
		r.bounce(st, origin, StanzaError{Condition: JIDMalformed})
		return
	}
	if tj.Domainpart() != r.srv.Domain {
		if c := r.srv.component(tj.Domainpart()); c != nil {
			if origin == nil {
				// A stanza the server or a component made: it may come
				// back here only so many times, so that no module can
				// make a routing loop (a room inviting itself once hung
				// the server).
				var ok bool
				if ctx, ok = deeper(ctx); !ok || sameDomain(st.Get("from"), tj.Domainpart()) {
					r.srv.log.Warn("routing loop: stanza dropped", "from", st.Get("from"), "to", to, "name", st.Local)
					return
				}
			}
			c.HandleStanza(ctx, st, tj, origin)
			return
		}
		local := r.srv.Domain
		if fj, err := jid.Parse(st.Get("from")); err == nil && r.srv.serves(fj.Domainpart()) {
			local = fj.Domainpart() // a component's stanza goes from its own domain
		}
		r.srv.sendRemote(st, local, tj.Domainpart(), origin)
		return
	}
	if tj.Localpart() == "" {
		r.toServer(ctx, st, origin)
		return
	}
	r.toAccount(ctx, st, origin, tj)
}

// toSelf handles a stanza without 'to' (RFC 6120 §10.3): it is addressed to
// the sender's own account.
func (r *Router) toSelf(ctx context.Context, st *Element, origin *Session) {
	switch st.Local {
	case "presence":
		// Broadcast presence is the presence hooks' (Session.handle).
	case "iq":
		if !r.srv.handleIQ(ctx, st, origin, ToAccount) {
			r.srv.handleIQ(ctx, st, origin, ToServer)
		}
	case "message":
		if origin != nil {
			r.toAccount(ctx, st, origin, origin.jid.Bare())
		}
	}
}

func (r *Router) toServer(ctx context.Context, st *Element, origin *Session) {
	if st.Local == "iq" {
		r.srv.handleIQ(ctx, st, origin, ToServer)
	}
	// Messages and presence for the server itself have no handler yet and
	// are dropped, as Prosody and ejabberd do.
}

// toAccount handles a stanza to a local account, bare or full JID, after
// the stage hooks for messages and presence.
func (r *Router) toAccount(ctx context.Context, st *Element, origin *Session, to jid.JID) {
	stage := MessageIn
	if st.Local == "presence" {
		stage = PresenceIn
	}
	if st.Local != "iq" && r.srv.hooks.has(stage) {
		ev := newEvent()
		ev.Stanza, ev.To, ev.Origin = st, to, origin
		handled := r.srv.hooks.runStanza(ctx, stage, ev)
		ev.free()
		if handled {
			return
		}
	}
	if to.Resourcepart() != "" {
		r.toFull(ctx, st, origin, to)
		return
	}
	r.toBare(ctx, st, origin, to)
}

// toFull implements RFC 6121 §8.5.3.
func (r *Router) toFull(ctx context.Context, st *Element, origin *Session, to jid.JID) {
	// A session that is closing takes nothing more (its queue is shut):
	// the stanza goes on as if it were gone, or it would be lost.
	if s := r.session(to); s != nil && !s.ending() && r.deliver(ctx, s, st) {
		return
	}
	if r.srv.Bus != nil && r.toRemoteFull(ctx, st, to) {
		return
	}
	switch st.Local {
	case "message":
		switch typ := st.Get("type"); {
		case toBareWhenGone(typ):
			r.toBare(ctx, st, origin, to.Bare())
		case typ == "groupchat":
			r.bounce(st, origin, StanzaError{Condition: ServiceUnavailable})
		}
	case "iq":
		r.bounce(st, origin, StanzaError{Condition: ServiceUnavailable})
	case "presence":
		// §8.5.3.2.3: silently ignored.
	}
}

// toBareWhenGone reports whether a message of type typ to a full JID with
// no session goes to the bare JID instead (§8.5.3.2.1); toFull and
// Recipients share it.
func toBareWhenGone(typ string) bool {
	switch typ {
	case "", "normal", "chat", "headline":
		return true
	}
	return false
}

// toBare implements RFC 6121 §8.5.2.
func (r *Router) toBare(ctx context.Context, st *Element, origin *Session, to jid.JID) {
	bare := to.String()
	sessions := r.sessions(bare)
	switch st.Local {
	case "iq":
		if ok, err := r.srv.accountExists(ctx, bare, sessions); !ok {
			r.bounce(st, origin, noAccountError(err))
			return
		}
		r.srv.handleIQ(ctx, st, origin, ToAccount)
	case "presence":
		// Presence to an account goes to each available resource
		// (§8.5.2.1.1); subscriptions are the roster's business, in its
		// PresenceIn hook.
		for _, s := range sessions {
			if ok, _ := s.Available(); ok {
				r.deliver(ctx, s, st)
			}
		}
		r.ToOtherNodes(ctx, bare, st)
	case "message":
		typ := st.Get("type")
		if typ == "error" {
			return
		}
		if typ == "groupchat" {
			r.bounce(st, origin, StanzaError{Condition: ServiceUnavailable})
			return
		}
		targets := highestPriority(sessions, typ == "headline")
		if r.srv.Bus != nil {
			// The account's resources on other nodes count too.
			if rms := r.remotes(ctx, bare); len(rms) > 0 {
				best := -1
				if len(targets) > 0 {
					_, best = targets[0].Available()
				}
				nodes, keepLocal := remoteTargets(rms, best, typ == "headline")
				sent := false
				for _, n := range nodes {
					sent = r.sendTo(ctx, n, st) || sent
				}
				if !keepLocal {
					targets = nil
				}
				if sent && len(targets) == 0 {
					return
				}
			}
		}
		delivered := false
		for _, s := range targets {
			delivered = r.deliver(ctx, s, st) || delivered
		}
		if !delivered {
			// None, or each closed as it was picked: never dropped.
			r.undeliverable(ctx, st, origin, bare, sessions)
		}
	}
}

// Reachable reports whether a message to the bare JID would reach a
// session now: one that is available with a non-negative priority.
func (r *Router) Reachable(bare string) bool {
	return len(highestPriority(r.sessions(bare), false)) > 0
}

// highestPriority picks the available resources with non-negative priority
// that a message to a bare JID goes to: all of them for headlines, the ones
// sharing the highest priority otherwise (RFC 6121 §8.5.2.1.1).
func highestPriority(sessions []*Session, all bool) []*Session {
	var out []*Session
	best := -1
	for _, s := range sessions {
		ok, p := s.Available()
		if !ok || p < 0 || s.ending() {
			continue
		}
		switch {
		case all:
			out = append(out, s)
		case p > best:
			best = p
			out = append(out[:0], s)
		case p == best:
			out = append(out, s)
		}
	}
	return out
}

// undeliverable handles a message for an account with no available resource
// (RFC 6121 §8.5.2.2): a module may take it (offline storage); otherwise
// normal and chat messages bounce and headlines are dropped.
func (r *Router) undeliverable(ctx context.Context, st *Element, origin *Session, bare string, sessions []*Session) {
	if ok, err := r.srv.accountExists(ctx, bare, sessions); !ok {
		r.bounce(st, origin, noAccountError(err))
		return
	}
	ev := &StanzaEvent{Stanza: st, To: jid.MustParse(bare), Origin: origin}
	if r.srv.hooks.runStanza(ctx, Undeliverable, ev) {
		if ev.Bounce != nil {
			r.bounce(st, origin, *ev.Bounce)
		}
		return
	}
	if st.Get("type") != "headline" {
		r.bounce(st, origin, StanzaError{Condition: ServiceUnavailable})
	}
}

// bounce returns an error to the sender of st, unless st is itself an error
// or a result (RFC 6120 §8.3.1).
func (r *Router) bounce(st *Element, origin *Session, e StanzaError) {
	switch st.Get("type") {
	case "error", "result":
		return
	}
	reply := ErrorReply(st, e)
	if reply.Get("from") == "" {
		reply.Set("from", r.srv.replyFrom(origin))
	}
	r.deliverReply(reply, origin)
}

// replyFrom is who answers a stanza that had no 'to': the sender's own
// account (RFC 6120 §10.3), so the answer comes from the bare JID the
// request was implicitly addressed to; the server when there is no local
// sender.
func (s *Server) replyFrom(origin *Session) string {
	if origin != nil {
		return origin.bare
	}
	return s.Domain
}

// deliverReply sends a reply generated by the server to the stanza's sender.
func (r *Router) deliverReply(reply *Element, origin *Session) {
	if origin != nil {
		r.deliver(r.srv.ctx, origin, reply)
		return
	}
	r.Route(r.srv.ctx, reply, nil)
}

// errStorageUnavailable is the answer to a stanza for an account that
// storage could not look up: the account may well exist, so
// <service-unavailable/> (no such account, RFC 6121 §8.5.2.3) would be a
// lie, and the sender may try again later.
var errStorageUnavailable = StanzaError{Type: Wait, Condition: InternalError,
	Text: "the server cannot reach its storage now; the stanza was not delivered: try again later"}

// noAccountError is the error for a stanza to an account that does not
// exist (err nil) or could not be looked up.
func noAccountError(err error) StanzaError {
	if err != nil {
		return errStorageUnavailable
	}
	return StanzaError{Condition: ServiceUnavailable}
}

// accountExists answers from the sessions when there are any, and asks
// storage only when there are none. Members of a team or project are
// accounts even without credentials: they sign in with app tokens. The
// error says that storage could not answer.
func (s *Server) accountExists(ctx context.Context, bare string, sessions []*Session) (bool, error) {
	if len(sessions) > 0 {
		return true, nil
	}
	return s.lookupAccount(ctx, bare)
}

// AccountExists reports whether bare is an account of this server: one
// with credentials, or a member of a team or project. It is false when
// storage cannot say (which it logs).
func (s *Server) AccountExists(ctx context.Context, bare string) bool {
	ok, _ := s.lookupAccount(ctx, bare)
	return ok
}

func (s *Server) lookupAccount(ctx context.Context, bare string) (bool, error) {
	_, err := s.Store.Credentials(ctx, bare)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		s.log.Warn("storage error looking up account", "jid", bare, "err", err)
		return false, err
	}
	member, err := s.Store.IsMember(ctx, bare)
	if err != nil {
		s.log.Warn("storage error looking up group membership", "jid", bare, "err", err)
	}
	return member, err
}
