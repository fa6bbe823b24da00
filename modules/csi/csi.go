package csi

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/xmppd/xmppd/modules/offline"
	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/xmpp"
)

// NS is the XEP-0352 namespace.
const NS = "urn:xmpp:csi:0"

// Defaults of the module's bounds, for Module.MaxHeld and MaxHeldBytes of
// zero. Past either, everything held goes out at once (as Prosody's
// mod_csi_simple does when its queue is full) and holding starts again.
// What goes out at once must fit in what the server lets a session have
// waiting: the stanzas stream management keeps until the client
// acknowledges them (xmpp.DefaultSMMaxUnacked, 500) and the outbound
// queue (xmpp.DefaultQueueBytes, 1 MiB); half of each leaves room for what
// is waiting already. 250 senders are the contacts of a large roster that
// are online at once; presence stanzas are a few hundred bytes.
const (
	DefaultMaxHeld      = 250
	DefaultMaxHeldBytes = 256 << 10
)

// Priority is where the Deliver hook runs: after every other Deliver hook
// (a block list dropping a stanza, a module replacing it), since what it
// holds it later releases without hooks.
const Priority = -1000

// Module is Client State Indication.
type Module struct {
	// MaxHeld bounds the senders whose presence one inactive session holds,
	// and MaxHeldBytes the bytes held; both are capped at half of the
	// server's SMMaxUnacked and QueueSize (QueueBytes for the bytes). A
	// negative MaxHeld holds nothing: <csi/> is offered, and changes
	// nothing.
	MaxHeld      int
	MaxHeldBytes int

	srv *xmpp.Server
	// states holds the sessions that said <inactive/> (*xmpp.Session →
	// *state). Keyed by the session, a state outlives a hibernation; it
	// goes at <active/> and at SessionEnded.
	states sync.Map
}

// state is one inactive session's held presence.
type state struct {
	mu       sync.Mutex
	inactive bool
	// held is in arrival order; an entry whose sender sent again since is
	// empty (el nil), and index finds each sender's live entry.
	held  []held
	index map[string]int
	bytes int
}

type held struct {
	el   *xmpp.Element
	size int
}

// Register implements xmpp.Module.
func (m *Module) Register(s *xmpp.Server) {
	m.srv = s
	m.MaxHeld = bound(m.MaxHeld, DefaultMaxHeld, s.SMMaxUnacked/2, s.QueueSize/2)
	m.MaxHeldBytes = bound(m.MaxHeldBytes, DefaultMaxHeldBytes, s.QueueBytes/2)
	// §4.1: announced after authentication.
	s.AddStreamFeature(xmpp.Informational(NS, "csi"))
	s.HandleElement(NS, "inactive", m.inactive)
	s.HandleElement(NS, "active", m.active)
	if m.MaxHeld > 0 {
		s.Hook(xmpp.Deliver, Priority, m.deliver)
	}
	s.HookSession(xmpp.SessionEnded, 0, func(_ context.Context, sess *xmpp.Session) {
		if v, ok := m.states.LoadAndDelete(sess); ok {
			st := v.(*state)
			st.mu.Lock()
			st.inactive, st.held, st.index = false, nil, nil
			st.mu.Unlock()
		}
	})
}

// bound is v, or def when v is zero, capped at each of caps that is
// positive.
func bound(v, def int, caps ...int) int {
	if v == 0 {
		v = def
	}
	for _, c := range caps {
		if c > 0 && v > c {
			v = c
		}
	}
	return v
}

// inactive starts holding back presence for the session. An element
// handler runs on the session's reader, so it is done before the next
// stanza from the client is read (§5.1).
func (m *Module) inactive(_ context.Context, s *xmpp.Session, _ *xmpp.Element) error {
	v, _ := m.states.LoadOrStore(s, &state{})
	st := v.(*state)
	st.mu.Lock()
	st.inactive = true
	st.mu.Unlock()
	return nil
}

// active releases what was held, in the order it came, before the client's
// next stanza is handled (§5.1), and stops holding.
func (m *Module) active(_ context.Context, s *xmpp.Session, _ *xmpp.Element) error {
	v, ok := m.states.LoadAndDelete(s)
	if !ok {
		return nil // active already: every stream starts so (§5)
	}
	st := v.(*state)
	st.mu.Lock()
	defer st.mu.Unlock()
	st.inactive = false
	st.flush(m.srv.Router(), s)
	return nil
}

// deliver holds presence to an inactive session that it does not need at
// once: available and unavailable presence, which the next one from the
// same sender makes moot (§3.2). Subscription requests and answers, errors
// and a room's presence about the user itself pass, as do all messages and
// IQs.
func (m *Module) deliver(_ context.Context, ev *xmpp.StanzaEvent) bool {
	if ev.Stanza.Local != "presence" {
		return false
	}
	v, ok := m.states.Load(ev.Session)
	if !ok || !deferrable(ev.Stanza) {
		return false
	}
	st := v.(*state)
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.inactive {
		return false // <active/> came meanwhile
	}
	// The session's own copy: the stanza handed over may be a template
	// shared by many sessions, or an element its sender goes on using.
	el := ev.Addressed().ShallowCopy()
	if el.Child(offline.NSDelay, "delay") == nil {
		// XEP-0203: when the presence was sent, not when the client got it.
		stamp := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
		el.Children = append(slices.Clip(el.Children),
			xmpp.NewElement(offline.NSDelay, "delay", "from", m.srv.Domain, "stamp", stamp))
	}
	st.hold(el)
	if len(st.index) > m.MaxHeld || st.bytes > m.MaxHeldBytes {
		st.flush(m.srv.Router(), ev.Session)
	}
	return true
}

// deferrable reports whether presence may wait: available or unavailable,
// and not a room telling the user about themselves (XEP-0045 status 110),
// which a client that joins or is removed waits for.
func deferrable(p *xmpp.Element) bool {
	switch p.Get("type") {
	case "", "unavailable":
	default:
		return false // subscriptions (RFC 6121 §3), probes, errors
	}
	if x := p.Child(muc.NSUser, "x"); x != nil {
		for _, c := range x.Elements() {
			if c.Local == "status" && c.Get("code") == "110" {
				return false
			}
		}
	}
	return true
}

// hold keeps el, replacing what its sender sent before; st.mu is held.
func (st *state) hold(el *xmpp.Element) {
	from := el.Get("from")
	if st.index == nil {
		st.index = make(map[string]int)
	}
	if i, ok := st.index[from]; ok {
		st.bytes -= st.held[i].size
		st.held[i] = held{}
	}
	h := held{el: el, size: len(el.Bytes(xmpp.NSClient))}
	st.index[from] = len(st.held)
	st.held = append(st.held, h)
	st.bytes += h.size
	if len(st.held) > 2*len(st.index)+16 {
		st.compact() // a sender that changes often leaves many empty entries
	}
}

// compact drops the empty entries; st.mu is held.
func (st *state) compact() {
	live := st.held[:0]
	for _, h := range st.held {
		if h.el != nil {
			st.index[h.el.Get("from")] = len(live)
			live = append(live, h)
		}
	}
	clear(st.held[len(live):])
	st.held = live
}

// flush delivers what is held, in order, and forgets it; st.mu is held,
// so that nothing delivered meanwhile overtakes it. DeliverHeld only
// queues, and runs no hooks, so it cannot come back here.
func (st *state) flush(r *xmpp.Router, s *xmpp.Session) {
	for _, h := range st.held {
		if h.el != nil {
			r.DeliverHeld(s, h.el)
		}
	}
	st.held, st.bytes = nil, 0
	clear(st.index)
}
