package muc

import (
	"context"
	"slices"
	"sort"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// rank orders affiliations (XEP-0045 §5.2).
func rank(aff string) int {
	switch aff {
	case storage.AffOwner:
		return 4
	case storage.AffAdmin:
		return 3
	case storage.AffMember:
		return 2
	case storage.AffOutcast:
		return 0
	}
	return 1
}

// admin handles the muc#admin namespace: kicking, voice, moderator
// status, affiliations (bans among them) and the lists (§8, §9, §10.3-10.8).
// r.mu is held.
func (r *room) admin(st, q *xmpp.Element, typ string, from jid.JID) {
	var err *xmpp.StanzaError
	var res *xmpp.Element
	if typ == "get" {
		res, err = r.adminList(q, from)
	} else {
		err = r.adminSet(q, from)
	}
	if err != nil {
		r.reply(st, *err)
		return
	}
	if typ == "set" && r.cfg.Persistent {
		stored, affs := r.stored(), r.affList()
		r.later(func(ctx context.Context) {
			r.svc.save(ctx, stored, nil)
			r.syncAffiliations(ctx, affs)
		})
	}
	r.result(st, res)
}

// syncAffiliations writes a persistent room's affiliations: those it has,
// and none for every stored one it no longer has.
func (r *room) syncAffiliations(ctx context.Context, affs []storage.Affiliation) {
	if r.svc.Store == nil {
		return
	}
	old, err := r.svc.Store.Affiliations(ctx, r.bare)
	if err != nil {
		r.svc.log.Warn("reading affiliations", "room", r.bare, "err", err)
		return
	}
	for _, a := range old {
		if !slices.ContainsFunc(affs, func(b storage.Affiliation) bool { return b.JID == a.JID }) {
			r.svc.Store.SetAffiliation(ctx, r.bare, storage.Affiliation{JID: a.JID, Affiliation: storage.AffNone})
		}
	}
	for _, a := range affs {
		if err := r.svc.Store.SetAffiliation(ctx, r.bare, a); err != nil {
			r.svc.log.Warn("saving affiliation", "room", r.bare, "jid", a.JID, "err", err)
		}
	}
}

func forbidden(text string) *xmpp.StanzaError {
	return &xmpp.StanzaError{Condition: xmpp.Forbidden, Text: text}
}

func (r *room) adminList(q *xmpp.Element, from jid.JID) (*xmpp.Element, *xmpp.StanzaError) {
	items := q.Elements()
	if len(items) != 1 || items[0].Local != "item" {
		return nil, &xmpp.StanzaError{Condition: xmpp.BadRequest}
	}
	actorAff := r.affiliation(from.Bare().String())
	res := xmpp.NewElement(NSAdmin, "query")
	if aff := items[0].Get("affiliation"); aff != "" {
		switch {
		case aff == storage.AffNone || rank(aff) == 1:
			return nil, &xmpp.StanzaError{Condition: xmpp.BadRequest}
		case rank(actorAff) < rank(storage.AffAdmin):
			return nil, forbidden("only admins and owners see affiliation lists")
		}
		var list []storage.Affiliation
		for _, a := range r.affs {
			if a.Affiliation == aff {
				list = append(list, a)
			}
		}
		sort.Slice(list, func(i, j int) bool { return list[i].JID < list[j].JID })
		for _, a := range list {
			it := xmpp.NewElement(NSAdmin, "item", "affiliation", a.Affiliation, "jid", a.JID)
			if a.Nick != "" {
				it.Set("nick", a.Nick)
			}
			if a.Reason != "" {
				it.Add(xmpp.NewElement(NSAdmin, "reason").Add(xmpp.Text(a.Reason)))
			}
			res.Add(it)
		}
		return res, nil
	}
	role := items[0].Get("role")
	actor := r.byFull[from.String()]
	if actor == nil || actor.role != roleModerator {
		return nil, forbidden("only moderators see role lists")
	}
	var nicks []string
	for nick, o := range r.byNick {
		if o.role == role {
			nicks = append(nicks, nick)
		}
	}
	sort.Strings(nicks)
	for _, nick := range nicks {
		o := r.byNick[nick]
		it := xmpp.NewElement(NSAdmin, "item", "nick", nick, "role", o.role, "affiliation", r.affiliation(o.bare))
		if len(o.sessions) > 0 {
			it.Set("jid", o.sessions[0].full)
		}
		res.Add(it)
	}
	return res, nil
}

// adminSet applies every item, or none: each is checked before any is
// applied.
func (r *room) adminSet(q *xmpp.Element, from jid.JID) *xmpp.StanzaError {
	items := q.Elements()
	if len(items) == 0 {
		return &xmpp.StanzaError{Condition: xmpp.BadRequest}
	}
	actor := r.byFull[from.String()]
	actorAff := r.affiliation(from.Bare().String())
	actorNick := ""
	if actor != nil {
		actorNick = actor.nick
	}
	type change struct {
		o      *occupant // for role changes
		bare   string    // for affiliation changes
		role   string
		aff    string
		reason string
	}
	var changes []change
	for _, it := range items {
		if it.Local != "item" {
			return &xmpp.StanzaError{Condition: xmpp.BadRequest}
		}
		reason := ""
		if el := it.Child(NSAdmin, "reason"); el != nil {
			reason = el.Text()
		}
		if role := it.Get("role"); role != "" {
			o := r.byNick[it.Get("nick")]
			if o == nil {
				return &xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "no occupant with that nick"}
			}
			targetAff := r.affiliation(o.bare)
			switch role {
			case roleNone, roleVisitor, roleParticipant:
				if actor == nil || actor.role != roleModerator {
					return forbidden("only moderators may do that")
				}
				if rank(targetAff) >= rank(storage.AffAdmin) {
					return &xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "admins and owners keep their role"}
				}
				if o.role == roleModerator && rank(actorAff) < rank(storage.AffAdmin) {
					return &xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "only admins and owners revoke moderator status"}
				}
			case roleModerator:
				if rank(actorAff) < rank(storage.AffAdmin) {
					return forbidden("only admins and owners grant moderator status")
				}
			default:
				return &xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "unknown role"}
			}
			changes = append(changes, change{o: o, role: role, reason: reason})
			continue
		}
		aff := it.Get("affiliation")
		target := it.Get("jid")
		tj, err := jid.Parse(target)
		if aff == "" || err != nil {
			return &xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "an item needs a role and nick, or an affiliation and jid"}
		}
		bare := tj.Bare().String()
		current := r.affiliation(bare)
		switch aff {
		case storage.AffOwner, storage.AffAdmin:
			if actorAff != storage.AffOwner {
				return forbidden("only owners grant admin and owner")
			}
		case storage.AffMember, storage.AffNone, storage.AffOutcast:
			if rank(actorAff) < rank(storage.AffAdmin) {
				return forbidden("only admins and owners change affiliations")
			}
			if rank(current) >= rank(storage.AffAdmin) && actorAff != storage.AffOwner {
				return &xmpp.StanzaError{Condition: xmpp.NotAllowed, Text: "an admin cannot change an admin or owner"}
			}
		default:
			return &xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "unknown affiliation"}
		}
		if current == storage.AffOwner && aff != storage.AffOwner && r.owners() == 1 {
			return &xmpp.StanzaError{Condition: xmpp.ConflictCond, Text: "a room keeps at least one owner"}
		}
		changes = append(changes, change{bare: bare, aff: aff, reason: reason})
	}
	for _, c := range changes {
		if c.o != nil {
			if c.role == roleNone {
				r.remove(c.o, "307", actorNick, c.reason)
				continue
			}
			c.o.role = c.role
			r.recordAll(c.o)
			r.broadcastPresence(c.o, nil)
			continue
		}
		r.affiliate(storage.Affiliation{JID: c.bare, Affiliation: c.aff, Reason: c.reason}, actorNick)
	}
	return nil
}

// affiliate gives a bare JID an affiliation and applies it to its
// occupants: a ban (301) or, in a members-only room, the loss of
// membership (321) takes them out; otherwise their role follows (§9, §10).
// r.mu is held.
func (r *room) affiliate(a storage.Affiliation, actorNick string) {
	r.setAffiliation(a)
	for _, o := range r.byNick {
		if o.bare != a.JID {
			continue
		}
		switch {
		case a.Affiliation == storage.AffOutcast:
			r.remove(o, "301", actorNick, a.Reason)
		case r.cfg.MembersOnly && a.Affiliation == storage.AffNone:
			r.remove(o, "321", actorNick, a.Reason)
		default:
			o.role = r.defaultRole(a.Affiliation)
			r.recordAll(o)
			r.broadcastPresence(o, nil)
		}
	}
}

func (r *room) owners() int {
	n := 0
	for _, a := range r.affs {
		if a.Affiliation == storage.AffOwner {
			n++
		}
	}
	return n
}

// remove takes an occupant out of the room (kick 307, ban 301, membership
// lost 321): every session and every occupant learns why. r.mu is held.
func (r *room) remove(o *occupant, code, actor, reason string) {
	delete(r.byNick, o.nick)
	o.role = roleNone
	build := func(withJID, self bool) xmpp.Fanout {
		p := xmpp.NewElement(xmpp.NSClient, "presence", "type", "unavailable", "from", r.occupantJID(o.nick))
		codes := []string{code}
		if self {
			codes = append(codes, "110")
		}
		x := r.userX(o, withJID, "", codes)
		it := x.Child(NSUser, "item")
		if actor != "" {
			it.Add(xmpp.NewElement(NSUser, "actor", "nick", actor))
		}
		if reason != "" {
			it.Add(xmpp.NewElement(NSUser, "reason").Add(xmpp.Text(reason)))
		}
		p.Add(x)
		return xmpp.NewFanout(p)
	}
	self := build(true, true)
	for _, s := range o.sessions {
		r.deliver(s, self)
		delete(r.byFull, s.full)
		r.svc.track(s.full, r, false)
		r.unrecord(s.full)
	}
	r.toOccupants(build(true, false), build(false, false))
	o.sessions = nil
}
