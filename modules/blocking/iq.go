package blocking

import (
	"context"
	"errors"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// blocklist answers a request for the list (§3.2) from the cache, and
// marks the session as one that gets pushes.
func (m *Module) blocklist(_ context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	a, err := m.ownAccount(iq)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if a.requested == nil {
		a.requested = make(map[*xmpp.Session]bool)
	}
	a.requested[iq.Session] = true
	items := a.get().sorted()
	a.mu.Unlock()
	return itemsElement("blocklist", items), nil
}

// itemsElement builds <local xmlns='urn:xmpp:blocking'> with an <item/>
// for each JID.
func itemsElement(local string, items []string) *xmpp.Element {
	el := xmpp.NewElement(NS, local)
	for _, j := range items {
		el.Add(xmpp.NewElement(NS, "item", "jid", j))
	}
	return el
}

// items reads the JIDs of a <block/> or <unblock/>, normalised; an item
// without a valid JID is <jid-malformed/> (§3.3).
func items(payload *xmpp.Element) ([]string, error) {
	var out []string
	seen := make(map[string]bool)
	for _, it := range payload.Elements() {
		if it.Space != NS || it.Local != "item" {
			continue
		}
		j, err := jid.Parse(it.Get("jid"))
		if err != nil || it.Get("jid") == "" {
			return nil, xmpp.StanzaError{Condition: xmpp.JIDMalformed, Text: "not a JID: " + it.Get("jid")}
		}
		s := j.String()
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out, nil
}

// block adds JIDs to the list (§3.3): stored, then the contacts they block
// that receive the account's presence get unavailable presence from its
// available resources, then the cache changes and the resources that asked
// for the list get a push.
func (m *Module) block(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	a, err := m.ownAccount(iq)
	if err != nil {
		return nil, err
	}
	jids, err := items(iq.Payload)
	if err != nil {
		return nil, err
	}
	if len(jids) == 0 {
		return nil, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "a block needs at least one item"}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := m.Store.Block(ctx, a.bare, jids, m.Max); err != nil {
		if errors.Is(err, storage.ErrLimit) {
			return nil, xmpp.StanzaError{Condition: xmpp.PolicyViolationCond, Text: "the block list is full"}
		}
		return nil, err
	}
	old := a.get()
	var added []string
	for _, j := range jids {
		if _, ok := old[j]; !ok {
			added = append(added, j)
		}
	}
	// Before the cache blocks them, or the presence would be dropped.
	m.tellContacts(ctx, a.bare, newList(added), old, false)
	m.set(a, old.with(jids))
	m.push(ctx, a, itemsElement("block", jids))
	m.tellOthers(ctx, a.bare, itemsElement("block", jids))
	return nil, nil
}

// unblock removes JIDs from the list, or all of them when none is named
// (§3.4, §3.5); the contacts unblocked that receive the account's presence
// get it again.
func (m *Module) unblock(ctx context.Context, iq *xmpp.IQ) (*xmpp.Element, error) {
	a, err := m.ownAccount(iq)
	if err != nil {
		return nil, err
	}
	jids, err := items(iq.Payload)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.get()
	var removed []string
	if len(jids) == 0 {
		if _, err := m.Store.UnblockAll(ctx, a.bare); err != nil {
			return nil, err
		}
		removed = old.sorted()
		m.set(a, list{})
	} else {
		if _, err := m.Store.Unblock(ctx, a.bare, jids); err != nil {
			return nil, err
		}
		for _, j := range jids {
			if _, ok := old[j]; ok {
				removed = append(removed, j)
			}
		}
		m.set(a, old.without(jids))
	}
	// After the cache lets them through.
	m.tellContacts(ctx, a.bare, newList(removed), a.get(), true)
	m.push(ctx, a, itemsElement("unblock", jids))
	m.tellOthers(ctx, a.bare, itemsElement("unblock", jids))
	return nil, nil
}

// push sends the change to every resource of the account that asked for
// the list (§3.3, §3.4); a.mu is held.
func (m *Module) push(ctx context.Context, a *account, payload *xmpp.Element) {
	for s := range a.requested {
		iq := xmpp.NewElement(xmpp.NSClient, "iq", "type", "set", "id", m.nextID(),
			"from", a.bare, "to", s.JID().String())
		iq.Add(payload)
		m.srv.Router().DeliverSession(ctx, s, iq)
	}
}

// tellContacts sends, to each contact that receives owner's presence and
// that changed matches, unavailable presence from owner's available
// resources (a block), or their current presence (an unblock), unless
// still blocks it. A full JID item is told alone, not its account.
func (m *Module) tellContacts(ctx context.Context, owner string, changed, still list, available bool) {
	if len(changed) == 0 || m.Roster == nil {
		return
	}
	var targets []jid.JID
	seen := make(map[string]bool)
	for _, c := range m.Roster.Subscribers(ctx, owner) {
		cj, err := jid.Parse(c)
		if err != nil {
			continue
		}
		for it := range changed {
			ij, err := jid.Parse(it)
			if err != nil {
				continue
			}
			var t jid.JID
			switch {
			case ij.Resourcepart() != "" && ij.Bare().Equal(cj):
				t = ij
			case changed.matches(cj):
				t = cj
			default:
				continue
			}
			if available && still.matches(t) {
				continue
			}
			if !seen[t.String()] {
				seen[t.String()] = true
				targets = append(targets, t)
			}
		}
	}
	if len(targets) == 0 {
		return
	}
	rs, err := m.srv.Registry().Resources(ctx, owner)
	if err != nil {
		m.log.Warn("presence registry", "jid", owner, "err", err)
		return
	}
	for _, r := range rs {
		if !r.Available {
			continue
		}
		var p *xmpp.Element
		if available {
			if r.Presence == nil {
				continue
			}
			if p, err = xmpp.ParseElement(r.Presence); err != nil {
				continue
			}
		} else {
			p = xmpp.NewElement(xmpp.NSClient, "presence", "type", "unavailable")
		}
		p.Set("from", owner+"/"+r.Resource)
		for _, t := range targets {
			c := p.ShallowCopy()
			c.Set("to", t.String())
			m.srv.Router().Route(ctx, c, nil)
		}
	}
}
