package muc

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// invitation handles mediated invitations and declines (XEP-0045 §7.8.2):
// the room passes them on from itself, so that the invitee need not know
// the inviter's real JID in advance. Inviting someone to a members-only
// room makes them a member when the inviter may grant membership.
// Invitations and declines go to users: one addressed to this service (a
// room, an occupant, the service itself) is refused, as it could only come
// back into the service. r.mu is held.
func (r *room) invitation(st, x *xmpp.Element, o *occupant, from jid.JID) {
	if d := x.Child(NSUser, "decline"); d != nil {
		to, serr := r.svc.invitee(d.Get("to"))
		if serr != nil {
			r.reply(st, *serr)
			return
		}
		out := xmpp.NewElement(xmpp.NSClient, "message", "from", r.bare, "to", to.String())
		nx := xmpp.NewElement(NSUser, "x")
		nd := xmpp.NewElement(NSUser, "decline", "from", from.Bare().String())
		if reason := d.Child(NSUser, "reason"); reason != nil {
			nd.Add(reason)
		}
		out.Add(nx.Add(nd))
		r.send(out)
		return
	}
	var invites []*xmpp.Element
	for _, c := range x.Elements() {
		if c.Local == "invite" {
			invites = append(invites, c)
		}
	}
	if len(invites) == 0 {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.BadRequest})
		return
	}
	aff := r.affiliation(from.Bare().String())
	switch {
	case o == nil:
		r.reply(st, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "join the room first"})
		return
	case !r.cfg.AllowInvites && rank(aff) < rank(storage.AffAdmin):
		r.reply(st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "invitations are not allowed here"})
		return
	}
	// Every invitee is checked before any invitation goes out.
	invitees := make([]jid.JID, len(invites))
	for i, inv := range invites {
		to, serr := r.svc.invitee(inv.Get("to"))
		if serr != nil {
			r.reply(st, *serr)
			return
		}
		invitees[i] = to
	}
	for i, inv := range invites {
		to := invitees[i]
		bare := to.Bare().String()
		if r.cfg.MembersOnly && r.affiliation(bare) == storage.AffNone {
			a := storage.Affiliation{JID: bare, Affiliation: storage.AffMember}
			r.setAffiliation(a)
			if r.svc.Store != nil && r.cfg.Persistent {
				r.later(func(ctx context.Context) {
					if err := r.svc.Store.SetAffiliation(ctx, r.bare, a); err != nil {
						r.svc.log.Warn("saving affiliation", "room", r.bare, "jid", bare, "err", err)
					}
				})
			}
		}
		out := xmpp.NewElement(xmpp.NSClient, "message", "from", r.bare, "to", to.String())
		nx := xmpp.NewElement(NSUser, "x")
		ni := xmpp.NewElement(NSUser, "invite", "from", from.Bare().String())
		if reason := inv.Child(NSUser, "reason"); reason != nil {
			ni.Add(reason)
		}
		nx.Add(ni)
		if r.cfg.Password != "" {
			nx.Add(xmpp.NewElement(NSUser, "password").Add(xmpp.Text(r.cfg.Password)))
		}
		out.Add(nx)
		r.send(out)
	}
}

// invitee reads the address an invitation or a decline is for. One of
// this service is refused with item-not-found, the condition §7.8.2 gives
// for an invitee that does not exist: no user lives here.
func (s *Service) invitee(addr string) (jid.JID, *xmpp.StanzaError) {
	to, err := jid.Parse(addr)
	if err != nil || to.Domainpart() == "" {
		return jid.JID{}, &xmpp.StanzaError{Condition: xmpp.JIDMalformed, Text: "invitations need a JID"}
	}
	if to.Domainpart() == s.Domain {
		return jid.JID{}, &xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "invitations go to users, not to rooms or this service"}
	}
	return to, nil
}

// directInvitation reports whether a message is a direct invitation
// (XEP-0249), which goes to a user, never to a room or the service.
func directInvitation(st *xmpp.Element) bool {
	return st.Child(NSConference, "x") != nil
}
