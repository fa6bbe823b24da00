package muc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/xmpp"
)

// iq handles IQ requests to the room and to its occupants. r.mu is held.
func (r *room) iq(st *xmpp.Element, to, from jid.JID) {
	typ := st.Get("type")
	if typ != "get" && typ != "set" {
		return
	}
	q := payload(st)
	if q == nil {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.BadRequest})
		return
	}
	if to.Resourcepart() != "" {
		r.occupantIQ(st, q, to.Resourcepart(), from)
		return
	}
	switch {
	case typ == "get" && q.Space == NSInfo && q.Local == "query":
		r.result(st, r.info())
	case typ == "get" && q.Space == NSItems && q.Local == "query":
		// Occupants are not listed from outside (§6.5, §14.4).
		r.result(st, xmpp.NewElement(NSItems, "query"))
	case q.Space == NSOwner && q.Local == "query":
		r.owner(st, q, typ, from)
	case q.Space == NSAdmin && q.Local == "query":
		r.admin(st, q, typ, from)
	default:
		r.reply(st, xmpp.StanzaError{Condition: xmpp.FeatureNotImplemented})
	}
}

// occupantIQ handles an IQ request to an occupant JID. A self-ping
// (XEP-0410) is answered by the room. Any other IQ from an occupant is
// forwarded to the addressed occupant's real JID from the sender's
// occupant JID, and its answer goes back the same way (XEP-0045 §17.4:
// neither learns the other's real JID); vCard requests go to the
// occupant's bare JID, where vCards are kept (XEP-0054 §3.3). r.mu is held.
func (r *room) occupantIQ(st, q *xmpp.Element, nick string, from jid.JID) {
	o := r.byFull[from.String()]
	if q.Space == NSPing && q.Local == "ping" && st.Get("type") == "get" {
		// XEP-0410 §3: joined under this nick, or not-acceptable. A ping
		// to another occupant is an IQ like any other.
		if o != nil && o.nick == nick {
			r.result(st, nil)
			return
		}
		if o == nil || r.byNick[nick] == nil {
			r.reply(st, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "not an occupant under this nick"})
			return
		}
	}
	if o == nil {
		// §6.6: requests to an occupant JID from outside the room.
		r.reply(st, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "only occupants send requests to occupants"})
		return
	}
	target := r.byNick[nick]
	if target == nil || len(target.sessions) == 0 {
		// §7.5: as for a private message to an occupant JID that does
		// not exist.
		r.reply(st, xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "no such occupant"})
		return
	}
	dest := target.sessions[0].jid
	if q.Space == NSVCard && q.Local == "vCard" {
		dest = dest.Bare()
	}
	id, ok := r.svc.forwards.add(forwardedIQ{
		via:      r.occupantJID(o.nick),
		dest:     dest,
		sender:   from.String(),
		origID:   st.Get("id"),
		occupant: r.occupantJID(nick),
	})
	if !ok {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.ResourceConstraintC, Text: "too many requests waiting for an answer"})
		return
	}
	out := st.ShallowCopy()
	out.Set("from", r.occupantJID(o.nick))
	out.Set("to", dest.String())
	out.Set("id", id)
	r.send(out)
}

// answer takes the result or error of an IQ the service forwarded back to
// its sender, from the occupant JID the sender addressed and with the id
// it gave. An answer to nothing forwarded, or from anyone but the one it
// went to, is dropped (RFC 6120 §8.2.3: answers are not answered).
func (s *Service) answer(ctx context.Context, st *xmpp.Element, to, from jid.JID) {
	p, ok := s.forwards.take(st.Get("id"), to.String(), from)
	if !ok {
		return
	}
	out := st.ShallowCopy()
	out.Set("from", p.occupant)
	out.Set("to", p.sender)
	out.Set("id", p.origID)
	// An error's 'by' may name the occupant's real JID (RFC 6120 §8.3.2).
	out.Children = make([]xmpp.Node, len(st.Children))
	for i, c := range st.Children {
		if e, ok := c.(*xmpp.Element); ok && e.Local == "error" && e.Get("by") != "" {
			e = e.ShallowCopy()
			e.Set("by", "")
			c = e
		}
		out.Children[i] = c
	}
	s.send(ctx, out)
}

// Bounds of the IQs forwarded to occupants that wait for an answer.
const (
	// forwardTimeout is how long an answer is waited for; clients give
	// up on a request well before.
	forwardTimeout = time.Minute
	// maxForwarded bounds the requests waiting across the service, and
	// maxForwardedPerSender those of one sender's session.
	maxForwarded          = 10000
	maxForwardedPerSender = 100
)

// forwardedIQ is an IQ forwarded to an occupant, waiting for its answer.
type forwardedIQ struct {
	id       string  // the id the service gave it
	via      string  // the sender's occupant JID, to which the answer comes
	dest     jid.JID // where the request went, from which the answer comes
	sender   string  // the sender's real full JID
	origID   string  // the sender's id
	occupant string  // the occupant JID addressed, from which the answer goes
	expires  time.Time
}

// forwards remembers the forwarded IQs by the id the service gave them,
// for forwardTimeout at most. Expired entries are dropped whenever an
// entry is added or taken: no goroutine, and nothing that grows without
// bound.
type forwards struct {
	mu     sync.Mutex
	now    func() time.Time
	prefix string
	n      uint64
	byID   map[string]*forwardedIQ
	// queue holds the entries in the order they expire (one timeout for
	// all), taken ones too until they reach the front.
	queue    []*forwardedIQ
	bySender map[string]int
}

func newForwards() *forwards {
	b := make([]byte, 6)
	rand.Read(b)
	return &forwards{
		now:      time.Now,
		prefix:   "muc-" + hex.EncodeToString(b) + "-",
		byID:     make(map[string]*forwardedIQ),
		bySender: make(map[string]int),
	}
}

// add remembers p under a new id; false when too many are waiting.
func (f *forwards) add(p forwardedIQ) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	f.expire(now)
	if len(f.byID) >= maxForwarded || f.bySender[p.sender] >= maxForwardedPerSender {
		return "", false
	}
	f.n++
	p.id = f.prefix + strconv.FormatUint(f.n, 36)
	p.expires = now.Add(forwardTimeout)
	e := &p
	f.byID[p.id] = e
	f.bySender[p.sender]++
	f.queue = append(f.queue, e)
	if len(f.queue) > 2*maxForwarded {
		// Mostly answered entries: keep the waiting ones only.
		live := f.queue[:0]
		for _, q := range f.queue {
			if f.byID[q.id] == q {
				live = append(live, q)
			}
		}
		clear(f.queue[len(live):])
		f.queue = live
	}
	return p.id, true
}

// take returns and forgets the entry with id, if it is waiting for an
// answer to via from from.
func (f *forwards) take(id, via string, from jid.JID) (forwardedIQ, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expire(f.now())
	p := f.byID[id]
	if p == nil || p.via != via {
		return forwardedIQ{}, false
	}
	// A bare destination (a vCard request) is answered by the account's
	// server, from the bare JID; a full one by that session.
	if !from.Equal(p.dest) {
		return forwardedIQ{}, false
	}
	f.drop(p)
	return *p, true
}

// expire drops the entries whose time is up.
func (f *forwards) expire(now time.Time) {
	i := 0
	for ; i < len(f.queue) && now.After(f.queue[i].expires); i++ {
		if p := f.queue[i]; f.byID[p.id] == p {
			f.drop(p)
		}
	}
	if i > 0 {
		clear(f.queue[:i])
		f.queue = f.queue[i:]
	}
}

func (f *forwards) drop(p *forwardedIQ) {
	delete(f.byID, p.id)
	if f.bySender[p.sender]--; f.bySender[p.sender] <= 0 {
		delete(f.bySender, p.sender)
	}
}

// waiting is how many forwarded IQs wait for an answer.
func (f *forwards) waiting() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byID)
}
