package muc

import (
	"context"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Roles of occupants (XEP-0045 §5.1).
const (
	roleModerator   = "moderator"
	roleParticipant = "participant"
	roleVisitor     = "visitor"
	roleNone        = "none"
)

// An occupant is one nick in a room. Several sessions of one account may
// share it (XEP-0045 §7.2.9); they count as one occupant.
type occupant struct {
	nick     string
	bare     string
	sessions []member
	role     string
	// presence is the occupant's last presence as sent, without to/from
	// and the muc#user payload, which is added per recipient.
	presence *xmpp.Element
}

// A member is one session of an occupant: its address, serialised once, and
// its local session when it has one, so that delivery needs no lookup.
type member struct {
	jid  jid.JID
	full string
	sess *xmpp.Session
}

type message struct {
	el   *xmpp.Element // from the room JID of the sender, without 'to'
	at   time.Time
	size int // characters of the serialised message, for maxchars
}

type room struct {
	svc  *Service
	jid  jid.JID
	bare string

	mu        sync.Mutex
	cfg       storage.RoomConfig
	subject   string
	subjectBy string
	created   time.Time
	// locked is a new room that its owner has not configured yet
	// (XEP-0045 §10.1.1): nobody else may enter.
	locked  bool
	affs    map[string]storage.Affiliation // by bare JID
	byNick  map[string]*occupant
	byFull  map[string]*occupant
	history []message

	// gone is a room the service no longer serves (destroyed, or
	// temporary and left empty).
	gone bool

	// out is what the room sends once unlocked, flushing whether a
	// goroutine is sending it now (outbox.go).
	out      []outgoing
	flushing bool
}

func newRoom(s *Service, j jid.JID) *room {
	return &room{
		svc:    s,
		jid:    j,
		bare:   j.String(),
		cfg:    storage.RoomConfig{Public: true, WhoIs: "moderators", HistoryLength: DefaultHistory, AllowPM: "anyone", AllowInvites: true},
		affs:   make(map[string]storage.Affiliation),
		byNick: make(map[string]*occupant),
		byFull: make(map[string]*occupant),
	}
}

// title is the room's name for discovery: its configured name, or its
// localpart when it has none, so that clients do not show an empty title.
func (r *room) title() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.titleLocked()
}

func (r *room) titleLocked() string {
	if r.cfg.Name != "" {
		return r.cfg.Name
	}
	return r.jid.Localpart()
}

func (r *room) listed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg.Public && !r.locked
}

// setAffiliation gives a bare JID an affiliation (none removes it),
// keeping the service's count of rooms per owner. r.mu is held.
func (r *room) setAffiliation(a storage.Affiliation) {
	was := r.affiliation(a.JID)
	if a.Affiliation == storage.AffNone {
		delete(r.affs, a.JID)
	} else {
		r.affs[a.JID] = a
	}
	switch {
	case was != storage.AffOwner && a.Affiliation == storage.AffOwner:
		r.svc.countOwner(r, a.JID, 1)
	case was == storage.AffOwner && a.Affiliation != storage.AffOwner:
		r.svc.countOwner(r, a.JID, -1)
	}
}

// ownerJIDs lists the bare JIDs of the room's owners. r.mu is held.
func (r *room) ownerJIDs() []string {
	var list []string
	for _, a := range r.affs {
		if a.Affiliation == storage.AffOwner {
			list = append(list, a.JID)
		}
	}
	return list
}

func (r *room) affiliation(bare string) string {
	if a, ok := r.affs[bare]; ok {
		return a.Affiliation
	}
	return storage.AffNone
}

// defaultRole is the role an affiliation enters with (XEP-0045 §5.1.2).
func (r *room) defaultRole(aff string) string {
	switch aff {
	case storage.AffOwner, storage.AffAdmin:
		return roleModerator
	case storage.AffMember:
		return roleParticipant
	}
	if r.cfg.Moderated {
		return roleVisitor
	}
	return roleParticipant
}

func (r *room) occupantJID(nick string) string { return r.bare + "/" + nick }

// handle takes a stanza to the room or to one of its occupants. It holds
// the room's lock throughout and sends what it queued once it lets go.
func (r *room) handle(st *xmpp.Element, to, from jid.JID, origin *xmpp.Session) {
	r.mu.Lock()
	defer r.unlock()
	if r.gone {
		// Destroyed or emptied while this stanza was on its way: as for
		// any room that does not exist (§17.2 rule 3).
		if st.Local != "presence" || st.Get("type") == "" {
			r.reply(st, xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "the room is gone"})
		}
		return
	}
	switch st.Local {
	case "presence":
		if to.Resourcepart() == "" {
			r.reply(st, xmpp.StanzaError{Condition: xmpp.JIDMalformed, Text: "join with room@service/nick"})
			return
		}
		switch st.Get("type") {
		case "":
			r.available(st, to.Resourcepart(), from, origin)
		case "unavailable":
			status := ""
			if el := st.Child(xmpp.NSClient, "status"); el != nil {
				status = el.Text()
			}
			r.leave(from, status)
		}
	case "message":
		r.message(st, to, from)
	case "iq":
		r.iq(st, to, from)
	}
}

// available is a join, a nick change or a presence update.
func (r *room) available(st *xmpp.Element, nick string, from jid.JID, origin *xmpp.Session) {
	full := from.String()
	if o := r.byFull[full]; o != nil {
		if o.nick == nick {
			o.presence = stripPresence(st)
			r.recordAll(o)
			r.broadcastPresence(o, nil)
			return
		}
		r.changeNick(st, o, nick)
		return
	}
	bare := from.Bare().String()
	aff := r.affiliation(bare)
	errorTo := func(cond xmpp.Condition, text string) {
		r.reply(st, xmpp.StanzaError{Condition: cond, Text: text})
	}
	switch {
	case r.locked && aff != storage.AffOwner:
		errorTo(xmpp.ItemNotFound, "the room is being set up")
		return
	case aff == storage.AffOutcast:
		errorTo(xmpp.Forbidden, "you are banned from this room")
		return
	case r.cfg.MembersOnly && aff == storage.AffNone:
		errorTo(xmpp.RegistrationRequired, "this room is for members only")
		return
	case r.cfg.Password != "" && joinPassword(st) != r.cfg.Password && aff != storage.AffOwner:
		errorTo(xmpp.NotAuthorizedCond, "a password is required")
		return
	}
	o := r.byNick[nick]
	if o != nil && o.bare != bare {
		errorTo(xmpp.ConflictCond, "that nick is taken")
		return
	}
	if o == nil && r.cfg.MaxOccupants > 0 && len(r.byNick) >= r.cfg.MaxOccupants && aff != storage.AffOwner && aff != storage.AffAdmin {
		errorTo(xmpp.ServiceUnavailable, "the room is full")
		return
	}
	created := r.locked && len(r.byNick) == 0
	if o == nil {
		o = &occupant{nick: nick, bare: bare, role: r.defaultRole(aff)}
		r.byNick[nick] = o
	}
	newcomer := member{jid: from, full: full, sess: origin}
	o.sessions = append(o.sessions, newcomer)
	o.presence = stripPresence(st)
	r.byFull[full] = o
	r.svc.track(full, r, true)
	r.record(o, newcomer)

	// Everyone already there, to the newcomer (§7.2.3).
	for _, other := range r.byNick {
		if other == o {
			continue
		}
		r.deliver(newcomer, xmpp.NewFanout(r.presenceOf(other, r.canSeeJIDs(o), nil)))
	}
	// The newcomer to everyone, and to itself with its status codes.
	codes := []string{"110"}
	if r.cfg.WhoIs == "anyone" {
		codes = append(codes, "100")
	}
	if created {
		codes = append(codes, "201")
	}
	r.broadcastPresenceExcept(o, from, nil)
	r.deliver(newcomer, xmpp.NewFanout(r.presenceOf(o, true, codes)))
	r.sendHistory(st, from)
	// The subject, last, even when empty (§7.2.15).
	subj := xmpp.NewElement(xmpp.NSClient, "message", "type", "groupchat", "from", r.bare, "to", full)
	if r.subjectBy != "" {
		subj.Set("from", r.occupantJID(r.subjectBy))
	}
	subj.Add(xmpp.NewElement(xmpp.NSClient, "subject").Add(xmpp.Text(r.subject)))
	r.send(subj)
}

// joinPassword is the password in a join's <x xmlns=muc/>.
func joinPassword(st *xmpp.Element) string {
	if x := st.Child(NS, "x"); x != nil {
		if p := x.Child(NS, "password"); p != nil {
			return p.Text()
		}
	}
	return ""
}

// stripPresence keeps a presence's show, status and priority, and anything
// else that is not MUC protocol.
func stripPresence(st *xmpp.Element) *xmpp.Element {
	p := xmpp.NewElement(xmpp.NSClient, "presence")
	for _, c := range st.Elements() {
		if c.Space == NS || c.Space == NSUser {
			continue
		}
		p.Add(c)
	}
	return p
}

// canSeeJIDs says whether o may see occupants' real JIDs (§7.2.3, §7.2.4).
func (r *room) canSeeJIDs(o *occupant) bool {
	return r.cfg.WhoIs == "anyone" || o.role == roleModerator
}

// presenceOf is o's presence from its room JID, without 'to'.
func (r *room) presenceOf(o *occupant, withJID bool, codes []string) *xmpp.Element {
	p := xmpp.NewElement(xmpp.NSClient, "presence", "from", r.occupantJID(o.nick))
	if o.presence != nil {
		p.Children = append(p.Children, o.presence.Children...)
	}
	p.Add(r.userX(o, withJID, "", codes))
	return p
}

// userX is the muc#user payload describing o.
func (r *room) userX(o *occupant, withJID bool, newNick string, codes []string) *xmpp.Element {
	x := xmpp.NewElement(NSUser, "x")
	item := xmpp.NewElement(NSUser, "item", "affiliation", r.affiliation(o.bare), "role", o.role)
	if withJID && len(o.sessions) > 0 {
		item.Set("jid", o.sessions[0].full)
	}
	if newNick != "" {
		item.Set("nick", newNick)
	}
	x.Add(item)
	for _, c := range codes {
		x.Add(xmpp.NewElement(NSUser, "status", "code", c))
	}
	return x
}

// broadcastPresence sends o's presence to every occupant, and to o's own
// sessions with status 110.
func (r *room) broadcastPresence(o *occupant, codes []string) {
	r.broadcastPresenceExcept(o, jid.JID{}, codes)
}

// broadcastPresenceExcept is broadcastPresence without the session skip.
func (r *room) broadcastPresenceExcept(o *occupant, skip jid.JID, codes []string) {
	withJID := r.presenceOf(o, true, codes)
	withoutJID := r.presenceOf(o, false, codes)
	selfCodes := append([]string{"110"}, codes...)
	self := xmpp.NewFanout(r.presenceOf(o, true, selfCodes))
	fj, fn := xmpp.NewFanout(withJID), xmpp.NewFanout(withoutJID)
	for _, other := range r.byNick {
		f := fn
		switch {
		case other == o:
			f = self
		case r.canSeeJIDs(other):
			f = fj
		}
		for _, s := range other.sessions {
			if s.jid.Equal(skip) {
				continue
			}
			r.deliver(s, f)
		}
	}
}

// toOccupants sends a stanza to every occupant's sessions: withJID to those
// who may see real JIDs, withoutJID to the others.
func (r *room) toOccupants(withJID, withoutJID xmpp.Fanout) {
	for _, other := range r.byNick {
		f := withoutJID
		if r.canSeeJIDs(other) {
			f = withJID
		}
		for _, s := range other.sessions {
			r.deliver(s, f)
		}
	}
}

// changeNick moves o to nick (§7.6): unavailable with 303 under the old
// nick, then available under the new one.
func (r *room) changeNick(st *xmpp.Element, o *occupant, nick string) {
	if other := r.byNick[nick]; other != nil && other.bare != o.bare {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.ConflictCond, Text: "that nick is taken"})
		return
	}
	for _, other := range r.byNick {
		withJID := other == o || r.canSeeJIDs(other)
		codes := []string{"303"}
		if other == o {
			codes = append(codes, "110")
		}
		p := xmpp.NewElement(xmpp.NSClient, "presence", "type", "unavailable", "from", r.occupantJID(o.nick))
		p.Add(r.userX(o, withJID, nick, codes))
		f := xmpp.NewFanout(p)
		for _, s := range other.sessions {
			r.deliver(s, f)
		}
	}
	delete(r.byNick, o.nick)
	o.nick = nick
	o.presence = stripPresence(st)
	r.byNick[nick] = o
	r.recordAll(o)
	r.broadcastPresence(o, nil)
}

// leave takes one session out of the room (§7.14); the occupant leaves with
// its last session, and a temporary room with its last occupant.
func (r *room) leave(from jid.JID, status string) {
	full := from.String()
	o := r.byFull[full]
	if o == nil {
		return
	}
	delete(r.byFull, full)
	r.svc.track(full, r, false)
	r.unrecord(full)
	for i, s := range o.sessions {
		if s.full == full {
			o.sessions = append(o.sessions[:i], o.sessions[i+1:]...)
			break
		}
	}
	p := xmpp.NewElement(xmpp.NSClient, "presence", "type", "unavailable", "from", r.occupantJID(o.nick))
	if status != "" {
		p.Add(xmpp.NewElement(xmpp.NSClient, "status").Add(xmpp.Text(status)))
	}
	self := p.ShallowCopy()
	self.Add(r.userX(o, true, "", []string{"110"}))
	self.Set("to", full)
	r.send(self)
	if len(o.sessions) == 0 {
		delete(r.byNick, o.nick)
		o.role = roleNone
		withJID, withoutJID := p.ShallowCopy(), p.ShallowCopy()
		withJID.Add(r.userX(o, true, "", nil))
		withoutJID.Add(r.userX(o, false, "", nil))
		r.toOccupants(xmpp.NewFanout(withJID), xmpp.NewFanout(withoutJID))
	}
	if len(r.byNick) == 0 && !r.cfg.Persistent {
		r.svc.forget(r)
		if r.archiving() {
			// A temporary room's archive ends with it: whoever makes a
			// room of that name next does not read it.
			r.later(func(ctx context.Context) { r.svc.dropArchive(ctx, r.bare) })
		}
	}
}

// message handles a message to the room or to an occupant.
func (r *room) message(st *xmpp.Element, to, from jid.JID) {
	o := r.byFull[from.String()]
	typ := st.Get("type")
	if to.Resourcepart() != "" {
		r.private(st, o, to.Resourcepart())
		return
	}
	if typ != "groupchat" {
		if directInvitation(st) {
			// XEP-0249 invitations go to users (issue 15).
			r.reply(st, xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "invitations go to users, not to rooms"})
			return
		}
		if x := st.Child(NSUser, "x"); x != nil {
			r.invitation(st, x, o, from)
			return
		}
		r.reply(st, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "messages to a room are groupchat, invitations or declines"})
		return
	}
	if o == nil {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "join the room first"})
		return
	}
	if o.role == roleVisitor {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "visitors may not speak in this room"})
		return
	}
	subject := st.Child(xmpp.NSClient, "subject")
	body := st.Child(xmpp.NSClient, "body")
	if subject != nil && body == nil {
		if o.role != roleModerator && !r.cfg.AllowSubjectChange {
			r.reply(st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "only moderators may change the subject"})
			return
		}
		r.subject, r.subjectBy = subject.Text(), o.nick
		stored := r.stored()
		r.later(func(ctx context.Context) { r.svc.save(ctx, stored, nil) })
	}
	out := &xmpp.Element{Space: xmpp.NSClient, Local: "message"}
	for _, a := range st.Attr {
		if a.Space == "" && (a.Local == "to" || a.Local == "from") {
			continue
		}
		out.Attr = append(out.Attr, a)
	}
	out.Set("from", r.occupantJID(o.nick))
	out.Children = r.svc.withoutRoomPayloads(st.Children)
	if r.archiving() && mam.ArchivableInRoom(out) {
		out = r.archiveMessage(out, o)
	}
	// Serialised once, addressed per session (xmpp.Fanout).
	f := xmpp.NewFanout(out)
	if body != nil && r.cfg.HistoryLength > 0 {
		r.remember(out, f.Size())
	}
	for _, other := range r.byNick {
		for _, s := range other.sessions {
			r.deliver(s, f)
		}
	}
	if body != nil {
		r.mentions(r.svc.srv.Context(), body.Text(), r.occupantJID(o.nick))
	}
}

// private forwards a private message to an occupant (§7.5).
func (r *room) private(st *xmpp.Element, o *occupant, nick string) {
	switch {
	case st.Get("type") == "groupchat":
		r.reply(st, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "groupchat goes to the room"})
		return
	case o == nil:
		r.reply(st, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "join the room first"})
		return
	case !r.mayPM(o):
		r.reply(st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "private messages are not allowed here"})
		return
	}
	target := r.byNick[nick]
	if target == nil {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "no such occupant"})
		return
	}
	out := st.ShallowCopy()
	out.Set("from", r.occupantJID(o.nick))
	out.Children = append(append([]xmpp.Node(nil), st.Children...), xmpp.NewElement(NSUser, "x"))
	for _, s := range target.sessions {
		m := out.ShallowCopy()
		m.Set("to", s.full)
		r.send(m)
	}
}

func (r *room) mayPM(o *occupant) bool {
	switch r.cfg.AllowPM {
	case "none":
		return false
	case "moderators":
		return o.role == roleModerator
	case "participants":
		return o.role == roleModerator || o.role == roleParticipant
	}
	return true
}

// remember keeps a message for newcomers, up to the history length.
func (r *room) remember(el *xmpp.Element, size int) {
	r.history = append(r.history, message{el: el, at: time.Now().UTC(), size: size})
	if n := len(r.history) - r.cfg.HistoryLength; n > 0 {
		r.history = append(r.history[:0], r.history[n:]...)
	}
}

// sendHistory sends the discussion history a newcomer asked for
// (§7.2.14): by default all that is kept, within <history/>'s maxchars,
// maxstanzas, seconds and since.
func (r *room) sendHistory(join *xmpp.Element, to jid.JID) {
	var h *xmpp.Element
	if x := join.Child(NS, "x"); x != nil {
		h = x.Child(NS, "history")
	}
	msgs := r.history
	if h != nil {
		if v := h.Get("maxstanzas"); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < len(msgs) {
				msgs = msgs[len(msgs)-n:]
			}
		}
		var after time.Time
		if v := h.Get("seconds"); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				after = time.Now().Add(-time.Duration(n) * time.Second)
			}
		}
		if v := h.Get("since"); v != "" {
			if t, err := time.Parse(time.RFC3339, v); err == nil && t.After(after) {
				after = t
			}
		}
		if !after.IsZero() {
			i := 0
			for i < len(msgs) && msgs[i].at.Before(after) {
				i++
			}
			msgs = msgs[i:]
		}
		if v := h.Get("maxchars"); v != "" {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				total, i := 0, len(msgs)
				for i > 0 && total+msgs[i-1].size <= n {
					total += msgs[i-1].size
					i--
				}
				msgs = msgs[i:]
			}
		}
	}
	for _, m := range msgs {
		out := m.el.ShallowCopy()
		out.Children = append(append([]xmpp.Node(nil), m.el.Children...),
			xmpp.NewElement(NSDelay, "delay", "from", r.bare, "stamp", m.at.Format("2006-01-02T15:04:05.000Z")))
		out.Set("to", to.String())
		r.send(out)
	}
}

// stored is what persists of the room.
func (r *room) stored() storage.Room {
	return storage.Room{JID: r.bare, Config: r.cfg, Subject: r.subject, SubjectBy: r.subjectBy, Created: r.created}
}

func (r *room) affList() []storage.Affiliation {
	list := make([]storage.Affiliation, 0, len(r.affs))
	for _, a := range r.affs {
		list = append(list, a)
	}
	return list
}
