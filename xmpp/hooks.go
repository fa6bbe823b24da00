package xmpp

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"
)

// A Stage is a point on a stanza's way through the server where modules
// hook in (docs/ARCHITECTURE.md, "How a stanza travels"). Hooks of a stage
// run in order of priority, highest first, as Prosody's events do; a hook
// that handles the stanza stops the others and what the core would have
// done.
type Stage int

// Stanza stages.
const (
	// MessageOut: a message from a local client, 'from' stamped, before it
	// is routed (carbons copy it to the sender's other resources).
	MessageOut Stage = iota
	// PresenceOut: presence from a local client, 'from' stamped; the
	// session's availability already reflects a broadcast presence and
	// WasAvailable tells what it was. The roster handles it; without a
	// hook, directed presence is routed and broadcast presence goes
	// nowhere.
	PresenceOut
	// MessageIn: a message addressed to a local account (its bare or a full
	// JID), from anyone, before the delivery rules of RFC 6121 §8.5.
	MessageIn
	// PresenceIn: presence addressed to a local account, from anyone. The
	// roster handles it; without a hook it goes to the account's available
	// resources (or the one addressed).
	PresenceIn
	// Deliver: a stanza about to be queued for one local session, which is
	// Session. A hook may replace the stanza (Replace), or handle it: hold
	// it back to deliver later with Router.DeliverHeld, or drop it.
	Deliver
	// Undeliverable: a message to an existing account that has no
	// available resource with a non-negative priority (RFC 6121 §8.5.2.2).
	// A hook that stores it handles it; one that refuses it handles it
	// with Bounce set. Unhandled, chat and normal messages bounce with
	// <service-unavailable/> and headlines are dropped.
	Undeliverable
	// Remote: a stanza about to leave for another server, 'from' stamped;
	// To is its addressee, Origin the local session that sent it (nil when
	// the server or a module made it: a presence broadcast). A hook that
	// handles it stops it, and with Bounce set the sender gets that error.
	Remote
	numStages
)

// A StanzaEvent is what a stanza hook gets. It is the hook's only while
// the hook runs: the core reuses it afterwards, so a hook keeps what it
// needs (the stanza, the session), never the event.
type StanzaEvent struct {
	Stanza *Element
	// To is the stanza's 'to', parsed; the sender's bare JID when it had
	// none.
	To jid.JID
	// Session is the local session the stanza comes from (MessageOut,
	// PresenceOut) or goes to (Deliver).
	Session *Session
	// Origin is the local session that sent a stanza to a local account
	// (MessageIn, PresenceIn, Undeliverable), nil when it came from
	// another server or the server itself.
	Origin *Session
	// WasAvailable is, for PresenceOut, whether the session was available
	// before this presence.
	WasAvailable bool
	// Bounce, set by a hook that handles the stanza, is returned to its
	// sender as the error.
	Bounce *StanzaError
	// fanout is set, with isFanout, when Stanza is a shared template, not
	// yet addressed (Deliver of a Fanout); Replace makes it the session's
	// own.
	fanout             Fanout
	isFanout, replaced bool
}

// events recycles StanzaEvents: several are made for every message
// routed (MessageOut, MessageIn, Deliver), and hooks do not keep them.
var events = sync.Pool{New: func() any { return new(StanzaEvent) }}

// newEvent returns a zero StanzaEvent; free gives it back.
func newEvent() *StanzaEvent { return events.Get().(*StanzaEvent) }

func (ev *StanzaEvent) free() {
	*ev = StanzaEvent{}
	events.Put(ev)
}

// Replace substitutes el for the stanza (Deliver): the rest of the hooks
// and the session get el.
func (ev *StanzaEvent) Replace(el *Element) {
	ev.Stanza, ev.fanout, ev.isFanout, ev.replaced = el, Fanout{}, false, true
}

// Addressed returns the stanza as the session gets it, with its 'to': a
// copy when the event carries a fanout's shared template.
func (ev *StanzaEvent) Addressed() *Element {
	if ev.isFanout {
		return ev.fanout.Element(ev.Session.full)
	}
	return ev.Stanza
}

// A StanzaHook handles a stanza at a stage; true when it handled it, which
// stops the hooks after it and what the core would do.
type StanzaHook func(ctx context.Context, ev *StanzaEvent) (handled bool)

// A SessionStage is a point in a session's life.
type SessionStage int

// Session stages.
const (
	// SessionBound: the session has a full JID and is routable; nothing it
	// sent has been read yet.
	SessionBound SessionStage = iota
	// PresenceChanged: the session's broadcast presence changed (initial
	// presence, an update, or unavailable); Session.Available tells the
	// new state. It runs after PresenceOut.
	PresenceChanged
	// SessionHibernated: the session's connection is gone, and it waits to
	// be resumed (XEP-0198); it stays routable and available.
	SessionHibernated
	// SessionResumed: a hibernated session has a new connection.
	SessionResumed
	// SessionEnded: the session is gone for good, and no longer routable.
	SessionEnded
	numSessionStages
)

// A SessionHook acts on a change in a session's life.
type SessionHook func(ctx context.Context, s *Session)

// A SubscriptionHook learns of a change of the subscription between an
// account and a contact (RFC 6121 §3): from and to are the states before
// and after (storage.SubNone, SubTo, SubFrom, SubBoth).
type SubscriptionHook func(ctx context.Context, owner, contact jid.JID, from, to string)

type prioritized[F any] struct {
	priority int
	fn       F
}

// hookList is one stage's hooks, sorted by priority. Hooks are added while
// modules register and read on every stanza, so readers take no lock.
type hookList[F any] struct {
	mu   sync.Mutex
	list atomic.Pointer[[]prioritized[F]]
}

func (l *hookList[F]) add(priority int, fn F) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var next []prioritized[F]
	if p := l.list.Load(); p != nil {
		next = slices.Clone(*p)
	}
	// Stable: among equal priorities, the first registered runs first.
	i, _ := slices.BinarySearchFunc(next, priority, func(h prioritized[F], p int) int {
		if h.priority >= p {
			return -1
		}
		return 1
	})
	next = slices.Insert(next, i, prioritized[F]{priority, fn})
	l.list.Store(&next)
}

func (l *hookList[F]) get() []prioritized[F] {
	if p := l.list.Load(); p != nil {
		return *p
	}
	return nil
}

// hooks holds every stage's hooks.
type hooks struct {
	stanza       [numStages]hookList[StanzaHook]
	session      [numSessionStages]hookList[SessionHook]
	subscription hookList[SubscriptionHook]
	removed      hookList[func(context.Context, jid.JID)]
	nodeGone     hookList[func(context.Context, map[string][]string)]
	mistaken     hookList[func(context.Context)]
	shutdown     hookList[func()]
}

// Hook registers fn at a stanza stage with a priority (higher runs first;
// 0 is the default, the core's own behaviour comes after every hook).
func (s *Server) Hook(stage Stage, priority int, fn StanzaHook) {
	s.hooks.stanza[stage].add(priority, fn)
}

// HookSession registers fn at a stage of sessions' lives.
func (s *Server) HookSession(stage SessionStage, priority int, fn SessionHook) {
	s.hooks.session[stage].add(priority, fn)
}

// HookSubscription registers fn to learn of subscription changes, which
// the roster reports with SubscriptionChanged.
func (s *Server) HookSubscription(priority int, fn SubscriptionHook) {
	s.hooks.subscription.add(priority, fn)
}

// SubscriptionChanged tells the subscription hooks of a change.
func (s *Server) SubscriptionChanged(ctx context.Context, owner, contact jid.JID, from, to string) {
	for _, h := range s.hooks.subscription.get() {
		h.fn(ctx, owner, contact, from, to)
	}
}

// HookAccountRemoved registers fn to learn that an account was deleted
// from storage, so that what a module keeps of it in memory goes too;
// AccountRemoved reports it.
func (s *Server) HookAccountRemoved(fn func(ctx context.Context, bare jid.JID)) {
	s.hooks.removed.add(0, fn)
}

// AccountRemoved tells the modules that the account bare was deleted.
func (s *Server) AccountRemoved(ctx context.Context, bare jid.JID) {
	for _, h := range s.hooks.removed.get() {
		h.fn(ctx, bare)
	}
}

// HookSessionsGone registers fn to learn that sessions on another node
// ended without saying so (the node crashed): bare JID → resources. The
// roster tells this node's sessions that they are unavailable.
func (s *Server) HookSessionsGone(fn func(ctx context.Context, gone map[string][]string)) {
	s.hooks.nodeGone.add(0, fn)
}

// SessionsGone reports sessions of another node that ended without a word
// (a cluster node that died: its registry entries expired).
func (s *Server) SessionsGone(ctx context.Context, gone map[string][]string) {
	for _, h := range s.hooks.nodeGone.get() {
		h.fn(ctx, gone)
	}
}

// HookTakenForGone registers fn to learn that the other nodes of a
// cluster may have taken this node's sessions for gone (its registry
// entries had expired): the roster sends their presence again.
func (s *Server) HookTakenForGone(fn func(ctx context.Context)) { s.hooks.mistaken.add(0, fn) }

// TakenForGone reports that the other nodes may have taken this node's
// sessions for gone.
func (s *Server) TakenForGone(ctx context.Context) {
	for _, h := range s.hooks.mistaken.get() {
		h.fn(ctx)
	}
}

// OnShutdown runs fn when Shutdown begins, after the listeners close and
// before the sessions are: what fn sends to sessions is still written (the
// multi-user chat service says goodbye to occupants with status 332).
func (s *Server) OnShutdown(fn func()) { s.hooks.shutdown.add(0, fn) }

// runStanza runs a stage's hooks; true when one handled the stanza.
func (h *hooks) runStanza(ctx context.Context, stage Stage, ev *StanzaEvent) bool {
	for _, hk := range h.stanza[stage].get() {
		if hk.fn(ctx, ev) {
			return true
		}
	}
	return false
}

func (h *hooks) has(stage Stage) bool { return len(h.stanza[stage].get()) > 0 }

func (h *hooks) runSession(ctx context.Context, stage SessionStage, s *Session) {
	for _, hk := range h.session[stage].get() {
		hk.fn(ctx, s)
	}
}

func (h *hooks) runShutdown() {
	for _, hk := range h.shutdown.get() {
		hk.fn()
	}
}
