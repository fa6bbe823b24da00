package muc

import (
	"context"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// invitation handles mediated invitations and declines (XEP-0045 §7.8.2): the room passes them on from itself, so that the
// invitee need not know the inviter's real JID in advance. Inviting someone
// to a members-only room makes them a member when the inviter may grant
// membership. Called with r.mu held.
func (r *room) invitation(ctx context.Context, st, x *xmpp.Element, o *occupant, from jid.JID) {
	if d := x.Child(NSUser, "decline"); d != nil {
		to, err := jid.Parse(d.Get("to"))
		if err != nil {
			r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.JIDMalformed})
			return
		}
		out := xmpp.NewElement(xmpp.NSClient, "message", "from", r.bare, "to", to.String())
		nx := xmpp.NewElement(NSUser, "x")
		nd := xmpp.NewElement(NSUser, "decline", "from", from.Bare().String())
		if reason := d.Child(NSUser, "reason"); reason != nil {
			nd.Add(reason)
		}
		out.Add(nx.Add(nd))
		r.svc.send(ctx, out)
		return
	}
	invites := []*xmpp.Element{}
	for _, c := range x.Elements() {
		if c.Local == "invite" {
			invites = append(invites, c)
		}
	}
	if len(invites) == 0 {
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.BadRequest})
		return
	}
	aff := r.affiliation(from.Bare().String())
	switch {
	case o == nil:
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "join the room first"})
		return
	case !r.cfg.AllowInvites && rank(aff) < rank(storage.AffAdmin):
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "invitations are not allowed here"})
		return
	}
	for _, inv := range invites {
		to, err := jid.Parse(inv.Get("to"))
		if err != nil {
			r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.JIDMalformed})
			return
		}
		bare := to.Bare().String()
		if r.cfg.MembersOnly && r.affiliation(bare) == storage.AffNone {
			r.affs[bare] = storage.Affiliation{JID: bare, Affiliation: storage.AffMember}
			if r.svc.Store != nil && r.cfg.Persistent {
				if err := r.svc.Store.SetAffiliation(ctx, r.bare, r.affs[bare]); err != nil {
					r.svc.log.Warn("saving affiliation", "room", r.bare, "jid", bare, "err", err)
				}
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
		r.svc.send(ctx, out)
	}
}
