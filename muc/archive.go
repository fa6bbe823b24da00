package muc

import (
	"context"
	"errors"
	"slices"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// The room archive (XEP-0313 with XEP-0045): the groupchat of a room whose
// configuration enables archiving is kept in storage.Archive under the
// room's bare JID, and queried at that JID with the account archive's
// query language (modules/mam). docs/muc.md says who may query and what
// they see.

// archiving tells whether the room archives its messages now. r.mu is held.
func (r *room) archiving() bool {
	return r.svc.archive != nil && r.cfg.Archived()
}

// archiveMessage gives a groupchat message the room is about to broadcast
// (from the sender's occupant JID, without 'to') an archive id, queues it
// for the archive and returns it with the id stamped as <stanza-id
// by=room/> (XEP-0359; XEP-0313 §5.1.2), for every occupant's copy. The
// store is written after the room lets go of its lock (r.later), before
// any copy is delivered: a query sent by whoever received it finds it.
// r.mu is held.
func (r *room) archiveMessage(out *xmpp.Element, sender *occupant) *xmpp.Element {
	now := time.Now()
	id := r.svc.ids.Next(now)
	archived := out.ShallowCopy() // without the id: the result carries it
	archived.Children = slices.Clip(archived.Children)
	owner, with := r.bare, sender.bare
	r.later(func(ctx context.Context) {
		r.svc.archive.Add(ctx, storage.ArchivedMessage{
			ID: id, Owner: owner, With: with,
			Time: now.UTC().Truncate(time.Microsecond),
			Data: archived.Bytes(xmpp.NSClient),
		})
	})
	stamped := out.ShallowCopy()
	stamped.Children = append(slices.Clip(out.Children), xmpp.NewElement(mam.NSSID, "stanza-id", "by", r.bare, "id", id))
	return stamped
}

// roomPayload tells whether a child of a groupchat message is one only the
// room may put there: a stanza-id by a room of this service (XEP-0359 §4:
// the room adds its own, and a client's would be taken for the archive's),
// or muc#user data (an <item jid/> would claim a real JID in the archive's
// results, XEP-0313 §5.1.2).
func (s *Service) roomPayload(n xmpp.Node) bool {
	el, ok := n.(*xmpp.Element)
	if !ok {
		return false
	}
	if el.Space == NSUser {
		return true
	}
	if el.Space != mam.NSSID || el.Local != "stanza-id" {
		return false
	}
	by, err := jid.Parse(el.Get("by"))
	return err != nil || by.Domainpart() == s.Domain
}

// withoutRoomPayloads returns children without what roomPayload finds,
// copying the list only when there is something to take out.
func (s *Service) withoutRoomPayloads(children []xmpp.Node) []xmpp.Node {
	if !slices.ContainsFunc(children, s.roomPayload) {
		return children
	}
	return slices.DeleteFunc(slices.Clone(children), s.roomPayload)
}

// archiveAccess is what a query of the room's archive by from may do.
type archiveAccess struct {
	err *xmpp.StanzaError
	// realJIDs: the results may name senders' real JIDs.
	realJIDs bool
}

// accessArchive decides whether from may read the archive: an occupant,
// or for a members-only room a member (or admin, or owner) who need not
// be present; never an outcast. Real JIDs are for those who may see them
// in the room: anyone in a non-anonymous room, else moderators, and owners
// and admins (moderators whenever they are present). r.mu is held.
func (r *room) accessArchive(from jid.JID) archiveAccess {
	switch {
	case r.gone:
		return archiveAccess{err: &xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "the room is gone"}}
	case !r.archiving():
		return archiveAccess{err: &xmpp.StanzaError{Condition: xmpp.FeatureNotImplemented, Text: "this room keeps no archive"}}
	}
	aff := r.affiliation(from.Bare().String())
	o := r.byFull[from.String()]
	privileged := aff == storage.AffOwner || aff == storage.AffAdmin
	allowed := privileged || aff == storage.AffMember || (o != nil && !r.cfg.MembersOnly)
	if aff == storage.AffOutcast || (r.locked && aff != storage.AffOwner) {
		allowed = false
	}
	if !allowed {
		text := "only occupants may read this room's archive"
		if r.cfg.MembersOnly {
			text = "only members may read this room's archive"
		}
		return archiveAccess{err: &xmpp.StanzaError{Condition: xmpp.Forbidden, Text: text}}
	}
	return archiveAccess{realJIDs: r.cfg.WhoIs == "anyone" || privileged || (o != nil && o.role == roleModerator)}
}

// archiveIQ answers a urn:xmpp:mam:2 request to the room: the query form,
// or a query, whose results go to the requester before the <fin/>. It runs
// on the requester's goroutine, as the account archive's queries do, with
// the room locked only to decide who may read what.
func (s *Service) archiveIQ(ctx context.Context, r *room, st, q *xmpp.Element, from jid.JID, origin *xmpp.Session) {
	r.mu.Lock()
	acc := r.accessArchive(from)
	r.mu.Unlock()
	if acc.err != nil {
		s.reply(ctx, st, *acc.err)
		return
	}
	switch {
	case st.Get("type") == "get" && q.Local == "query":
		s.result(ctx, st, xmpp.NewElement(mam.NS, "query").Add(mam.QueryForm().Element()))
		return
	case st.Get("type") != "set" || q.Local != "query":
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.FeatureNotImplemented})
		return
	}
	fin, err := s.queryArchive(ctx, r.bare, q, from, acc, func(el *xmpp.Element) {
		if origin != nil && origin.JID().Equal(from) {
			s.srv.Router().DeliverSession(ctx, origin, el)
		} else {
			s.send(ctx, el)
		}
	})
	if err != nil {
		var se xmpp.StanzaError
		if !errors.As(err, &se) {
			s.log.Warn("querying a room archive", "room", r.bare, "err", err)
			se = xmpp.StanzaError{Condition: xmpp.InternalError}
		}
		s.reply(ctx, st, se)
		return
	}
	s.result(ctx, st, fin)
}

// queryArchive sends the page q selects of the room's archive to from, one
// result message at a time through send, and returns the <fin/>.
func (s *Service) queryArchive(ctx context.Context, room string, q *xmpp.Element, from jid.JID, acc archiveAccess, send func(*xmpp.Element)) (*xmpp.Element, error) {
	if node := q.Get("node"); node != "" {
		return nil, xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "a room's archive has no nodes"}
	}
	query, err := mam.ParseQuery(q, mam.DefaultMaxPage)
	if err != nil {
		return nil, err
	}
	// 'with' is a sender's real bare JID (what the archive keeps, and
	// what XEP-0313 §4.1.1 filters on); a nick is no lasting identity.
	if w := query.Archive.With; w != "" {
		if wj, err := jid.Parse(w); err == nil && wj.Domainpart() == s.Domain {
			return nil, xmpp.StanzaError{Condition: xmpp.FeatureNotImplemented, Text: "filter by the sender's real JID, not by an occupant JID"}
		}
		if !acc.realJIDs {
			return nil, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "only those who may see real JIDs in this room may filter by them"}
		}
	}
	if err := s.archive.Flush(ctx); err != nil {
		return nil, err
	}
	page, err := mam.Select(ctx, s.Archive, room, query)
	if err != nil {
		return nil, err
	}
	msgs := page.Messages
	if query.Flip {
		msgs = slices.Clone(msgs)
		slices.Reverse(msgs)
	}
	to := from.String()
	for _, msg := range msgs {
		el, err := mam.ResultMessage(room, to, query.ID, msg)
		if err != nil {
			s.log.Warn("archived message does not parse; skipped", "room", room, "id", msg.ID, "err", err)
			continue
		}
		if acc.realJIDs && msg.With != "" {
			addRealJID(el, msg.With)
		}
		send(el)
	}
	return mam.Fin(page), nil
}

// addRealJID adds the sender's real JID to the forwarded message of a
// result (XEP-0313 §5.1.2: <x xmlns=muc#user><item jid/></x>).
func addRealJID(result *xmpp.Element, real string) {
	res := result.Child(mam.NS, "result")
	if res == nil {
		return
	}
	fwd := res.Child(mam.NSForward, "forwarded")
	if fwd == nil {
		return
	}
	if m := fwd.Child(xmpp.NSClient, "message"); m != nil {
		m.Add(xmpp.NewElement(NSUser, "x").Add(xmpp.NewElement(NSUser, "item", "jid", real)))
	}
}

// dropArchive removes a room's archive after what is on its way there. It
// runs unlocked (r.later).
func (s *Service) dropArchive(ctx context.Context, room string) {
	if s.archive == nil {
		return
	}
	if err := s.archive.Flush(ctx); err != nil {
		s.log.Warn("flushing a room archive", "room", room, "err", err)
	}
	if err := s.Archive.DeleteArchive(ctx, room); err != nil {
		s.log.Warn("deleting a room archive", "room", room, "err", err)
	}
}
