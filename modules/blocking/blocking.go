package blocking

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Namespaces of XEP-0191.
const (
	NS       = "urn:xmpp:blocking"
	NSErrors = "urn:xmpp:blocking:errors"
)

// Priority is where the module's stanza hooks run: before every other
// module's (carbons, push, offline storage, the roster, client state
// indication), so that nothing copies, stores, notifies or holds a stanza
// the block list refuses.
const Priority = 1000

// DefaultMax is how many JIDs one account may block when Module.Max is zero.
const DefaultMax = 1000

// Roster is what the module needs of the roster: who receives an account's
// presence, to tell them of a block (§3.3) or an unblock (§3.4).
type Roster interface {
	Subscribers(ctx context.Context, owner string) []string
}

// Module is the Blocking Command.
type Module struct {
	// Store keeps the lists.
	Store storage.Blocking
	// Roster, when set, says who receives an account's presence; without
	// it blocking sends no unavailable presence and unblocking no presence.
	Roster Roster
	// Max bounds each account's list: zero selects DefaultMax, a negative
	// value means no limit.
	Max int

	srv *xmpp.Server
	log *slog.Logger

	mu sync.RWMutex
	// accounts holds the lists of the accounts with a session here, by bare
	// JID, loaded when the first session binds and dropped when the last
	// one ends: delivering to them reads no storage.
	accounts map[string]*account
	// sessions maps each session here to its account's entry.
	sessions sync.Map
	// nonEmpty counts the accounts here whose list is not empty. While it
	// is zero, which it is on a server where nobody blocks anyone, every
	// hook returns after one atomic load.
	nonEmpty atomic.Int64
	pushID   atomic.Uint64
	// reloads are the accounts whose lists another node of a cluster
	// changed, to read again (cluster.go).
	reloads func(string) bool
}

// account is one account's cached list.
type account struct {
	bare string
	// list is read by the hooks without a lock; mu serialises its changes,
	// and guards the rest.
	list     atomic.Pointer[list]
	mu       sync.Mutex
	sessions int
	dropped  bool
	// requested are the sessions that asked for the list, which get pushes
	// (§3.3).
	requested map[*xmpp.Session]bool
}

func (a *account) get() list {
	if l := a.list.Load(); l != nil {
		return *l
	}
	return nil
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.log = s.Log().With("module", "blocking")
	if m.Max == 0 {
		m.Max = DefaultMax
	}
	m.accounts = make(map[string]*account)
	// §3.1: the server's feature.
	s.AddFeature(xmpp.ToServer, NS)
	s.HandleIQ(xmpp.ToAccount, "get", NS, "blocklist", m.blocklist)
	s.HandleIQ(xmpp.ToAccount, "set", NS, "block", m.block)
	s.HandleIQ(xmpp.ToAccount, "set", NS, "unblock", m.unblock)
	s.HookSession(xmpp.SessionBound, Priority, m.bound)
	s.HookSession(xmpp.SessionEnded, Priority, m.ended)
	s.Hook(xmpp.MessageOut, Priority, m.outgoing)
	s.Hook(xmpp.PresenceOut, Priority, m.outgoing)
	s.Hook(xmpp.MessageIn, Priority, m.incoming)
	s.Hook(xmpp.PresenceIn, Priority, m.incoming)
	s.Hook(xmpp.Deliver, Priority, m.deliver)
	s.Hook(xmpp.Undeliverable, Priority, m.undeliverable)
	s.Hook(xmpp.Remote, Priority, m.remote)
	m.registerCluster(s)
}

// bound loads the account's list when its first session here binds. No
// goroutine waits for an account's lock while holding the module's (the
// handlers hold the first and read the second).
func (m *Module) bound(ctx context.Context, s *xmpp.Session) {
	bare := s.JID().Bare().String()
	for {
		m.mu.Lock()
		a := m.accounts[bare]
		fresh := a == nil
		if fresh {
			a = &account{bare: bare}
			// Held until the list is loaded, so that a second session
			// binding meanwhile waits for it; nobody else has a yet.
			a.mu.Lock()
			m.accounts[bare] = a
		}
		m.mu.Unlock()
		if !fresh {
			a.mu.Lock()
			if a.dropped {
				// Its last session just ended; ended removes it from the
				// map next.
				a.mu.Unlock()
				runtime.Gosched()
				continue
			}
		}
		a.sessions++
		m.sessions.Store(s, a)
		if fresh {
			items, err := m.Store.BlockList(ctx, bare)
			if err != nil {
				m.log.Warn("reading the block list", "jid", bare, "err", err)
			}
			m.set(a, newList(items))
		}
		a.mu.Unlock()
		return
	}
}

// ended drops the session, and the account's list with its last session.
func (m *Module) ended(_ context.Context, s *xmpp.Session) {
	v, ok := m.sessions.LoadAndDelete(s)
	if !ok {
		return
	}
	a := v.(*account)
	a.mu.Lock()
	delete(a.requested, s)
	a.sessions--
	last := a.sessions == 0
	if last {
		a.dropped = true
		if len(a.get()) > 0 {
			m.nonEmpty.Add(-1)
		}
	}
	a.mu.Unlock()
	if last {
		m.mu.Lock()
		if m.accounts[a.bare] == a {
			delete(m.accounts, a.bare)
		}
		m.mu.Unlock()
	}
}

// set publishes a's new list, keeping nonEmpty; a.mu is held.
func (m *Module) set(a *account, l list) {
	was, now := len(a.get()) > 0, len(l) > 0
	a.list.Store(&l)
	if a.dropped || was == now {
		return
	}
	if now {
		m.nonEmpty.Add(1)
	} else {
		m.nonEmpty.Add(-1)
	}
}

// cached returns the cached list of the account bare, nil when it has no
// session here or blocks nobody.
func (m *Module) cached(bare string) list {
	m.mu.RLock()
	a := m.accounts[bare]
	m.mu.RUnlock()
	if a == nil {
		return nil
	}
	return a.get()
}

// sessionList returns the cached list of s's account.
func (m *Module) sessionList(s *xmpp.Session) list {
	if v, ok := m.sessions.Load(s); ok {
		return v.(*account).get()
	}
	return nil
}

// Blocks reports whether the account bare, online here, blocks j; for
// tests and other modules.
func (m *Module) Blocks(bare string, j jid.JID) bool {
	return m.cached(bare).matches(j)
}

// errBlocked is the error a user's stanza to a blocked JID gets (§3.7).
func errBlocked() xmpp.StanzaError {
	return xmpp.StanzaError{Type: xmpp.Cancel, Condition: xmpp.NotAcceptable,
		App: xmpp.NewElement(NSErrors, "blocked")}
}

// refuse answers st, which the local session s sent to a JID its account
// blocks, with <not-acceptable/><blocked/> (§3.7). The error comes from
// the blocked JID, so it is handed to s without the Deliver hooks, which
// would drop it as a stanza from a blocked JID. Errors are not answered.
func (m *Module) refuse(s *xmpp.Session, st *xmpp.Element) {
	if st.Get("type") == "error" || (st.Local == "iq" && st.Get("type") == "result") {
		return
	}
	m.srv.Router().DeliverHeld(s, xmpp.ErrorReply(st, errBlocked()))
}

// unavailable answers a stanza from a JID the recipient blocks as §3.6
// says: messages and IQ gets and sets with <service-unavailable/>, as if
// the account did not exist; nothing else.
func (m *Module) unavailable(ctx context.Context, st *xmpp.Element) {
	switch typ := st.Get("type"); {
	case st.Local == "presence", typ == "error", typ == "result":
		return
	}
	reply := xmpp.ErrorReply(st, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable})
	m.srv.Router().Route(ctx, reply, nil)
}

// outgoing refuses a message or directed presence that a local client
// sends to a JID its account blocks (MessageOut, PresenceOut).
func (m *Module) outgoing(_ context.Context, ev *xmpp.StanzaEvent) bool {
	if m.nonEmpty.Load() == 0 {
		return false
	}
	to := ev.Stanza.Get("to")
	if to == "" {
		return false // to the account itself, or broadcast presence
	}
	l := m.sessionList(ev.Session)
	if len(l) == 0 {
		return false
	}
	tj, err := jid.Parse(to)
	if err != nil || !l.matches(tj) {
		return false
	}
	m.refuse(ev.Session, ev.Stanza)
	return true
}

// incoming drops a message or presence to a local account from a JID it
// blocks, before the rules of RFC 6121 pick its resources, carbons copy it
// or the roster acts on it (MessageIn, PresenceIn). Accounts without a
// session here are not cached: their messages are checked at
// Undeliverable, and presence to them reaches nobody.
func (m *Module) incoming(ctx context.Context, ev *xmpp.StanzaEvent) bool {
	if m.nonEmpty.Load() == 0 {
		return false
	}
	l := m.cached(ev.To.Bare().String())
	if len(l) == 0 {
		return false
	}
	fj, err := jid.Parse(ev.Stanza.Get("from"))
	if err != nil || !l.matches(fj) || fj.Bare().Equal(ev.To.Bare()) {
		return false
	}
	m.unavailable(ctx, ev.Stanza)
	return true
}

// deliver is the check every stanza to a local session passes, whoever
// sent it and by whatever way (the roster's presence goes straight to the
// sessions): dropped when the session's account blocks its sender, or when
// the sender, an account here, blocks the session (no presence leaks to a
// blocked contact, §3.3). Errors from an account to a JID it blocks pass:
// they are the refusals of §3.6.
func (m *Module) deliver(ctx context.Context, ev *xmpp.StanzaEvent) bool {
	if m.nonEmpty.Load() == 0 {
		return false
	}
	st := ev.Stanza
	from := st.Get("from")
	if from == "" {
		return false
	}
	v, ok := m.sessions.Load(ev.Session)
	if !ok {
		return false
	}
	rcpt := v.(*account)
	fromBare := bareOf(from)
	if fromBare == rcpt.bare {
		return false
	}
	if l := rcpt.get(); len(l) > 0 {
		if fj, err := jid.Parse(from); err == nil && l.matches(fj) {
			if st.Local == "iq" {
				m.unavailable(ctx, st)
			}
			return true
		}
	}
	if st.Get("type") == "error" {
		return false
	}
	if l := m.cached(fromBare); len(l) > 0 && l.matches(ev.Session.JID()) {
		if st.Local == "iq" {
			if s := m.sessionOf(from); s != nil {
				m.refuse(s, st)
			}
		}
		return true
	}
	return false
}

// sessionOf returns the local session bound to the full JID full, or nil.
func (m *Module) sessionOf(full string) *xmpp.Session {
	j, err := jid.Parse(full)
	if err != nil || j.Resourcepart() == "" {
		return nil
	}
	return m.srv.SessionOf(j)
}

// undeliverable refuses a message to an account with no available session
// from a JID it blocks, so that it is neither stored nor notified. The
// account may have no session here: its list is read from storage, for
// messages that offline storage would keep.
func (m *Module) undeliverable(ctx context.Context, ev *xmpp.StanzaEvent) bool {
	st := ev.Stanza
	switch st.Get("type") {
	case "", "normal", "chat":
	default:
		return false
	}
	fj, err := jid.Parse(st.Get("from"))
	if err != nil {
		return false
	}
	owner := ev.To.Bare().String()
	if fj.Bare().String() == owner {
		return false
	}
	l := m.cached(owner)
	if l == nil {
		m.mu.RLock()
		_, here := m.accounts[owner]
		m.mu.RUnlock()
		if !here {
			items, err := m.Store.BlockList(ctx, owner)
			if err != nil {
				m.log.Warn("reading the block list", "jid", owner, "err", err)
				return false
			}
			l = newList(items)
		}
	}
	if !l.matches(fj) {
		return false
	}
	ev.Bounce = &xmpp.StanzaError{Condition: xmpp.ServiceUnavailable}
	return true
}

// remote stops a stanza for another server that an account here sends, or
// that the server sends on its behalf (presence broadcasts, probe
// answers), to a JID the account blocks.
func (m *Module) remote(_ context.Context, ev *xmpp.StanzaEvent) bool {
	if m.nonEmpty.Load() == 0 {
		return false
	}
	st := ev.Stanza
	if st.Get("type") == "error" {
		return false
	}
	l := m.cached(bareOf(st.Get("from")))
	if len(l) == 0 || !l.matches(ev.To) {
		return false
	}
	if ev.Origin != nil {
		m.refuse(ev.Origin, st)
	}
	return true
}

// nextID returns an id for a push.
func (m *Module) nextID() string {
	return "block-" + strconv.FormatUint(m.pushID.Add(1), 10)
}

// ownAccount returns the cached entry of the account that sent iq, which
// must be a local client of the account addressed (§3.2: IQs with no 'to').
func (m *Module) ownAccount(iq *xmpp.IQ) (*account, error) {
	if iq.Session == nil || !iq.Session.JID().Bare().Equal(iq.To.Bare()) {
		return nil, xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "a block list is its own account's"}
	}
	v, ok := m.sessions.Load(iq.Session)
	if !ok {
		return nil, xmpp.StanzaError{Condition: xmpp.InternalError}
	}
	return v.(*account), nil
}
