package roster

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// The subscription state machine of RFC 6121 §3 and Appendix A. The
// account's lock is held only while its item is read and written; stanzas
// are routed after it is released, since routing to another local account
// takes that account's lock.

func addFrom(sub string) string {
	switch sub {
	case storage.SubTo, storage.SubBoth:
		return storage.SubBoth
	}
	return storage.SubFrom
}

func addTo(sub string) string {
	switch sub {
	case storage.SubFrom, storage.SubBoth:
		return storage.SubBoth
	}
	return storage.SubTo
}

func dropFrom(sub string) string {
	switch sub {
	case storage.SubBoth, storage.SubTo:
		return storage.SubTo
	}
	return storage.SubNone
}

func dropTo(sub string) string {
	switch sub {
	case storage.SubBoth, storage.SubFrom:
		return storage.SubFrom
	}
	return storage.SubNone
}

// update reads owner's item for contact, lets change modify it, and stores
// it when change says so, all under owner's lock. It returns the item as
// stored, and whether the client's view of it changed (a push is due):
// Pending In, for one, is not part of that view.
func (m *Module) update(ctx context.Context, owner, contact string, change func(*item) bool) (res item, changed bool, err error) {
	unlock, err := m.lock(ctx, owner)
	if err != nil {
		return item{}, false, err
	}
	defer unlock()
	it, err := m.lookup(ctx, owner, contact)
	if err != nil {
		return it, false, err
	}
	oldSub := it.Subscription
	defer func() {
		// Other modules learn of the change once it is stored (PEP sends
		// the last items to a new subscriber, for one).
		if err == nil && res.Subscription != oldSub {
			o, oerr := jid.Parse(owner)
			c, cerr := jid.Parse(contact)
			if oerr == nil && cerr == nil {
				m.srv.SubscriptionChanged(ctx, o, c, oldSub, it.Subscription)
			}
		}
	}()
	wasHidden := it.hidden()
	before := it.element().String()
	if !change(&it) {
		return it, false, nil
	}
	if it.stored && it.Subscription == storage.SubNone && !it.Ask && !it.PendingIn && !it.Approved && wasHidden {
		// A request that only the hidden item remembered is answered:
		// nothing is left to keep.
		err := m.Store.DeleteRosterItem(ctx, owner, contact)
		m.stale(ctx, owner)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return it, false, err
		}
		it.stored = false
		return it, false, nil
	}
	if err := m.save(ctx, owner, &it); err != nil {
		return it, false, err
	}
	return it, !it.hidden() && (wasHidden || it.element().String() != before), nil
}

// outboundSubscription handles a subscription stanza a local user sent to
// contact (RFC 6121 §3.1.2, §3.1.5, §3.2.2, §3.3.2).
func (m *Module) outboundSubscription(ctx context.Context, s *xmpp.Session, p *xmpp.Element, contact jid.JID, typ string) {
	user := s.JID().Bare()
	owner := user.String()
	c := contact.String()
	// Subscription stanzas carry the bare JID (§3.1.2).
	p.Set("from", owner)
	p.Set("to", c)
	if c == owner {
		// A subscription to oneself is implied (RFC 6121 §3.1.2).
		return
	}
	forward := true
	var sendPresence, sendUnavailable bool
	it, changed, err := m.update(ctx, owner, c, func(it *item) bool {
		switch typ {
		case "subscribe":
			if it.hasTo() || it.Ask {
				return false
			}
			it.Ask = true
			return true
		case "subscribed":
			switch {
			case it.PendingIn:
				it.Subscription = addFrom(it.Subscription)
				it.PendingIn, it.Approved = false, false
				sendPresence = true
				return true
			case !it.hasFrom():
				// Pre-approval (§3.4): remembered, not sent.
				forward = false
				if it.Approved {
					return false
				}
				it.Approved = true
				return true
			}
			return false
		case "unsubscribe":
			if !it.hasTo() && !it.Ask {
				return false
			}
			it.Subscription = dropTo(it.Subscription)
			it.Ask = false
			return true
		case "unsubscribed":
			switch {
			case it.hasFrom():
				it.Subscription = dropFrom(it.Subscription)
				it.PendingIn = false
				sendUnavailable = true
				return true
			case it.PendingIn || it.Approved:
				if !it.PendingIn {
					forward = false // cancels a pre-approval
				}
				it.PendingIn, it.Approved = false, false
				return true
			}
			return false
		}
		return false
	})
	if err != nil {
		var se xmpp.StanzaError
		if !errors.As(err, &se) {
			m.warn(ctx, "subscription", "jid", owner, "contact", c, "err", err)
			se = xmpp.StanzaError{Condition: xmpp.InternalError}
		}
		m.reply(ctx, p, se)
		return
	}
	if changed {
		m.pushAll(ctx, owner, it)
	}
	if forward {
		m.route(ctx, p)
	}
	if sendPresence {
		m.sendPresenceTo(ctx, owner, c, false)
	}
	if sendUnavailable {
		m.sendUnavailableTo(ctx, owner, c)
	}
}

// inboundSubscription handles a subscription stanza from contact to a local
// account (RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3).
func (m *Module) inboundSubscription(ctx context.Context, p *xmpp.Element, to, contact jid.JID, typ string) {
	owner := to.String()
	c := contact.String()
	if c == owner {
		return
	}
	if !m.srv.AccountExists(ctx, owner) {
		if typ == "subscribe" {
			m.route(ctx, presence(to, c, "unsubscribed"))
		}
		return
	}
	p = p.ShallowCopy()
	p.Set("from", c)
	p.Set("to", owner)
	deliver := false
	var autoReply string
	var sendPresence, sendUnavailable bool
	it, changed, err := m.update(ctx, owner, c, func(it *item) bool {
		switch typ {
		case "subscribe":
			switch {
			case it.hasFrom():
				autoReply = "subscribed"
				return false
			case it.Approved:
				it.Subscription = addFrom(it.Subscription)
				it.Approved, it.PendingIn = false, false
				autoReply = "subscribed"
				sendPresence = true
				return true
			}
			deliver = true
			if it.PendingIn {
				return false
			}
			it.PendingIn = true
			return true
		case "subscribed":
			if !it.Ask || it.hasTo() {
				return false
			}
			it.Subscription = addTo(it.Subscription)
			it.Ask = false
			deliver = true
			return true
		case "unsubscribe":
			if !it.hasFrom() && !it.PendingIn {
				return false
			}
			if it.hasFrom() {
				sendUnavailable = true
			}
			it.Subscription = dropFrom(it.Subscription)
			it.PendingIn = false
			deliver = true
			return true
		case "unsubscribed":
			if !it.hasTo() && !it.Ask {
				return false
			}
			it.Subscription = dropTo(it.Subscription)
			it.Ask = false
			deliver = true
			return true
		}
		return false
	})
	if err != nil {
		// A full roster cannot remember the request; the user still sees
		// it if online.
		m.warn(ctx, "subscription", "jid", owner, "contact", c, "err", err)
	}
	if sendUnavailable {
		m.sendUnavailableTo(ctx, owner, c)
	}
	// The stanza first, then the roster push (RFC 6121 §3.1.6).
	if deliver {
		m.deliver(ctx, owner, p)
	}
	if changed {
		m.pushAll(ctx, owner, it) // not for a hidden item
	}
	if autoReply != "" {
		m.route(ctx, presence(to, c, autoReply))
	}
	if sendPresence {
		m.sendPresenceTo(ctx, owner, c, false)
	}
}
