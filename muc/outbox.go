package muc

import (
	"context"

	"github.com/xmppd/xmppd/xmpp"
)

// A room never routes, delivers or writes to storage while it holds r.mu.
// Routing may come straight back into this service (a stanza for this room
// or another, on the same goroutine), and delivery may end a session whose
// end takes it out of rooms: with the lock held, either waits for itself
// (issue 15: a room invited to itself hung the server). So while locked, a
// room queues what it sends (r.send, r.deliver, r.reply, r.result) and
// what it stores (r.later), and r.unlock carries it out after letting go.
//
// Every handler takes the lock with r.mu.Lock and gives it back with
// r.unlock. Read-only helpers that queue nothing may use r.mu.Unlock.

// outgoing is one thing a room does once unlocked: route el, deliver f to
// m, or run fn.
type outgoing struct {
	el *xmpp.Element
	m  member
	f  xmpp.Fanout
	fn func(context.Context)
}

// send queues a stanza for the router. r.mu is held.
func (r *room) send(el *xmpp.Element) {
	r.out = append(r.out, outgoing{el: el})
}

// deliver queues f for one occupant session. r.mu is held.
func (r *room) deliver(m member, f xmpp.Fanout) {
	r.out = append(r.out, outgoing{m: m, f: f})
}

// later queues work that must not run under the lock, storage above all,
// in order with the stanzas. r.mu is held.
func (r *room) later(fn func(context.Context)) {
	r.out = append(r.out, outgoing{fn: fn})
}

// reply queues an error answering st from its addressee. r.mu is held.
func (r *room) reply(st *xmpp.Element, e xmpp.StanzaError) {
	if el := errorReply(st, e); el != nil {
		r.send(el)
	}
}

// result queues the result of an IQ with payload (nil for an empty
// result). r.mu is held.
func (r *room) result(iq *xmpp.Element, payload *xmpp.Element) {
	r.send(xmpp.ResultReply(iq, payload))
}

// unlock releases r.mu and carries out what was queued under it, in
// order. One goroutine at a time does so for a room (r.flushing), and it
// also carries out what others queue meanwhile: so every occupant gets the
// room's stanzas in the order the room made them (XEP-0045 §7.1: a
// newcomer's presences, history and subject before live traffic), and a
// stanza that comes back into the room while it sends is queued behind the
// others instead of waiting for a lock.
func (r *room) unlock() {
	if r.flushing || len(r.out) == 0 {
		r.mu.Unlock()
		return
	}
	r.flushing = true
	for len(r.out) > 0 {
		batch := r.out
		r.out = nil
		r.mu.Unlock()
		r.svc.carryOut(batch)
		clear(batch) // let go of the stanzas; keep the array for the next batch
		r.mu.Lock()
		if r.out == nil {
			r.out = batch[:0]
		}
	}
	r.flushing = false
	r.mu.Unlock()
}

// carryOut sends and runs a batch of a room's work, with no room locked.
func (s *Service) carryOut(batch []outgoing) {
	var remote nodeBatch // consecutive copies of one stanza, per node
	for _, o := range batch {
		switch {
		case o.el != nil:
			remote.flush(s)
			s.send(s.srv.Context(), o.el)
		case o.fn != nil:
			remote.flush(s)
			o.fn(s.srv.Context())
		default:
			if node := s.nodeOf(o.m); node != "" {
				remote.add(node, o.m, o.f)
				continue
			}
			remote.flush(s)
			s.deliver(o.m, o.f)
		}
	}
	remote.flush(s)
}
