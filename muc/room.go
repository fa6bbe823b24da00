package muc

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

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

func (r *room) name() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg.Name
}

func (r *room) listed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg.Public && !r.locked
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

func (r *room) handle(ctx context.Context, st *xmpp.Element, to, from jid.JID, origin *xmpp.Session) {
	switch st.Local {
	case "presence":
		if to.Resourcepart() == "" {
			r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.JIDMalformed, Text: "join with room@service/nick"})
			return
		}
		switch st.Get("type") {
		case "":
			r.available(ctx, st, to.Resourcepart(), from, origin)
		case "unavailable":
			status := ""
			if el := st.Child(xmpp.NSClient, "status"); el != nil {
				status = el.Text()
			}
			r.leave(ctx, from, status)
		}
	case "message":
		r.message(ctx, st, to, from)
	case "iq":
		r.iq(ctx, st, to, from)
	}
}

// available is a join, a nick change or a presence update.
func (r *room) available(ctx context.Context, st *xmpp.Element, nick string, from jid.JID, origin *xmpp.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	full := from.String()
	if o := r.byFull[full]; o != nil {
		if o.nick == nick {
			o.presence = stripPresence(st)
			r.broadcastPresence(o, nil)
			return
		}
		r.changeNick(ctx, st, o, nick, from)
		return
	}
	bare := from.Bare().String()
	aff := r.affiliation(bare)
	errorTo := func(cond xmpp.Condition, text string) {
		e := xmpp.ErrorReply(st, xmpp.StanzaError{Condition: cond, Text: text})
		e.Add(xmpp.NewElement(NS, "x"))
		r.svc.send(ctx, e)
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

	// Everyone already there, to the newcomer (§7.2.3).
	for _, other := range r.byNick {
		if other == o {
			continue
		}
		r.svc.deliver(newcomer, xmpp.NewFanout(r.presenceOf(other, r.canSeeJIDs(o), nil)))
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
	r.svc.deliver(newcomer, xmpp.NewFanout(r.presenceOf(o, true, codes)))
	r.sendHistory(ctx, st, from)
	// The subject, last, even when empty (§7.2.15).
	subj := xmpp.NewElement(xmpp.NSClient, "message", "type", "groupchat", "from", r.bare, "to", full)
	if r.subjectBy != "" {
		subj.Set("from", r.occupantJID(r.subjectBy))
	}
	subj.Add(xmpp.NewElement(xmpp.NSClient, "subject").Add(xmpp.Text(r.subject)))
	r.svc.send(ctx, subj)
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
			r.svc.deliver(s, f)
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
			r.svc.deliver(s, f)
		}
	}
}

// changeNick moves o to nick (§7.6): unavailable with 303 under the old
// nick, then available under the new one.
func (r *room) changeNick(ctx context.Context, st *xmpp.Element, o *occupant, nick string, from jid.JID) {
	if other := r.byNick[nick]; other != nil && other.bare != o.bare {
		e := xmpp.ErrorReply(st, xmpp.StanzaError{Condition: xmpp.ConflictCond, Text: "that nick is taken"})
		e.Add(xmpp.NewElement(NS, "x"))
		r.svc.send(ctx, e)
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
			r.svc.deliver(s, f)
		}
	}
	delete(r.byNick, o.nick)
	o.nick = nick
	o.presence = stripPresence(st)
	r.byNick[nick] = o
	r.broadcastPresence(o, nil)
}

// leave takes one session out of the room (§7.14); the occupant leaves with
// its last session.
func (r *room) leave(ctx context.Context, from jid.JID, status string) {
	r.mu.Lock()
	full := from.String()
	o := r.byFull[full]
	if o == nil {
		r.mu.Unlock()
		return
	}
	delete(r.byFull, full)
	r.svc.track(full, r, false)
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
	r.svc.send(ctx, self)
	if len(o.sessions) == 0 {
		delete(r.byNick, o.nick)
		o.role = roleNone
		withJID, withoutJID := p.ShallowCopy(), p.ShallowCopy()
		withJID.Add(r.userX(o, true, "", nil))
		withoutJID.Add(r.userX(o, false, "", nil))
		r.toOccupants(xmpp.NewFanout(withJID), xmpp.NewFanout(withoutJID))
	}
	empty := len(r.byNick) == 0 && !r.cfg.Persistent
	r.mu.Unlock()
	if empty {
		r.svc.remove(r)
	}
}

// message handles a message to the room or to an occupant.
func (r *room) message(ctx context.Context, st *xmpp.Element, to, from jid.JID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.byFull[from.String()]
	typ := st.Get("type")
	if to.Resourcepart() != "" {
		r.private(ctx, st, o, to.Resourcepart())
		return
	}
	if typ != "groupchat" {
		if x := st.Child(NSUser, "x"); x != nil {
			r.invitation(ctx, st, x, o, from)
			return
		}
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "messages to a room are groupchat, invitations or declines"})
		return
	}
	if o == nil {
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "join the room first"})
		return
	}
	if o.role == roleVisitor {
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "visitors may not speak in this room"})
		return
	}
	subject := st.Child(xmpp.NSClient, "subject")
	body := st.Child(xmpp.NSClient, "body")
	if subject != nil && body == nil {
		if o.role != roleModerator && !r.cfg.AllowSubjectChange {
			r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "only moderators may change the subject"})
			return
		}
		r.subject, r.subjectBy = subject.Text(), o.nick
		r.svc.save(ctx, r.stored(), nil)
	}
	out := &xmpp.Element{Space: xmpp.NSClient, Local: "message"}
	for _, a := range st.Attr {
		if a.Space == "" && (a.Local == "to" || a.Local == "from") {
			continue
		}
		out.Attr = append(out.Attr, a)
	}
	out.Set("from", r.occupantJID(o.nick))
	out.Children = st.Children
	// Serialised once, addressed per session (xmpp.Fanout).
	f := xmpp.NewFanout(out)
	if body != nil && r.cfg.HistoryLength > 0 {
		r.remember(out, f.Size())
	}
	for _, other := range r.byNick {
		for _, s := range other.sessions {
			r.svc.deliver(s, f)
		}
	}
}

// private forwards a private message to an occupant (§7.5).
func (r *room) private(ctx context.Context, st *xmpp.Element, o *occupant, nick string) {
	switch {
	case st.Get("type") == "groupchat":
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "groupchat goes to the room"})
		return
	case o == nil:
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "join the room first"})
		return
	case !r.mayPM(o):
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "private messages are not allowed here"})
		return
	}
	target := r.byNick[nick]
	if target == nil {
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "no such occupant"})
		return
	}
	out := st.ShallowCopy()
	out.Set("from", r.occupantJID(o.nick))
	out.Children = append(append([]xmpp.Node(nil), st.Children...), xmpp.NewElement(NSUser, "x"))
	for _, s := range target.sessions {
		m := out.ShallowCopy()
		m.Set("to", s.full)
		r.svc.send(ctx, m)
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
func (r *room) sendHistory(ctx context.Context, join *xmpp.Element, to jid.JID) {
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
		r.svc.send(ctx, out)
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

// iq handles IQs to the room and to occupants.
func (r *room) iq(ctx context.Context, st *xmpp.Element, to, from jid.JID) {
	typ := st.Get("type")
	if typ != "get" && typ != "set" {
		return
	}
	q := payload(st)
	if q == nil {
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.BadRequest})
		return
	}
	if to.Resourcepart() != "" {
		r.occupantIQ(ctx, st, q, to.Resourcepart(), from)
		return
	}
	switch {
	case typ == "get" && q.Space == NSInfo && q.Local == "query":
		r.svc.result(ctx, st, r.info())
	case typ == "get" && q.Space == NSItems && q.Local == "query":
		r.svc.result(ctx, st, xmpp.NewElement(NSItems, "query"))
	case q.Space == NSOwner && q.Local == "query":
		r.owner(ctx, st, q, typ, from)
	case q.Space == NSAdmin && q.Local == "query":
		r.admin(ctx, st, q, typ, from)
	default:
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.FeatureNotImplemented})
	}
}

// occupantIQ answers a self-ping (XEP-0410); other IQs to occupants are not
// forwarded yet.
func (r *room) occupantIQ(ctx context.Context, st, q *xmpp.Element, nick string, from jid.JID) {
	r.mu.Lock()
	o := r.byFull[from.String()]
	r.mu.Unlock()
	if q.Space == NSPing && q.Local == "ping" && st.Get("type") == "get" {
		if o != nil && o.nick == nick {
			r.svc.result(ctx, st, nil)
			return
		}
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "not an occupant under this nick"})
		return
	}
	r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.FeatureNotImplemented})
}

// info is the room's disco#info with muc#roominfo (§6.4).
func (r *room) info() *xmpp.Element {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := xmpp.NewElement(NSInfo, "query")
	q.Add(xmpp.NewElement(NSInfo, "identity", "category", "conference", "type", "text", "name", r.cfg.Name))
	features := []string{NS, NSInfo,
		pick(r.cfg.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.cfg.Public, "muc_public", "muc_hidden"),
		pick(r.cfg.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.cfg.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(r.cfg.Password != "", "muc_passwordprotected", "muc_unsecured"),
		pick(r.cfg.WhoIs == "anyone", "muc_nonanonymous", "muc_semianonymous"),
	}
	for _, f := range features {
		q.Add(xmpp.NewElement(NSInfo, "feature", "var", f))
	}
	x := xmpp.NewElement(NSData, "x", "type", "result")
	x.Add(field("FORM_TYPE", "hidden", NSRoomInf))
	x.Add(field("muc#roominfo_description", "", r.cfg.Description))
	x.Add(field("muc#roominfo_subject", "", r.subject))
	x.Add(field("muc#roominfo_occupants", "", strconv.Itoa(len(r.byNick))))
	x.Add(field("muc#roomconfig_roomname", "", r.cfg.Name))
	q.Add(x)
	return q
}

func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

func field(name, typ, value string, values ...string) *xmpp.Element {
	f := xmpp.NewElement(NSData, "field", "var", name)
	if typ != "" {
		f.Set("type", typ)
	}
	for _, v := range append([]string{value}, values...) {
		f.Add(xmpp.NewElement(NSData, "value").Add(xmpp.Text(v)))
	}
	return f
}

// owner handles the muc#owner namespace (§10): the configuration form,
// instant rooms and destruction.
func (r *room) owner(ctx context.Context, st, q *xmpp.Element, typ string, from jid.JID) {
	r.mu.Lock()
	if r.affiliation(from.Bare().String()) != storage.AffOwner {
		r.mu.Unlock()
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "only owners may configure the room"})
		return
	}
	if typ == "get" {
		form := r.configForm()
		r.mu.Unlock()
		r.svc.result(ctx, st, xmpp.NewElement(NSOwner, "query").Add(form))
		return
	}
	if d := q.Child(NSOwner, "destroy"); d != nil {
		r.mu.Unlock()
		reason := ""
		if el := d.Child(NSOwner, "reason"); el != nil {
			reason = el.Text()
		}
		r.destroy(ctx, d.Get("jid"), reason)
		r.svc.result(ctx, st, nil)
		return
	}
	x := q.Child(NSData, "x")
	if x == nil {
		r.mu.Unlock()
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.BadRequest})
		return
	}
	switch x.Get("type") {
	case "cancel":
		created := r.locked
		r.mu.Unlock()
		if created {
			r.destroy(ctx, "", "")
		}
		r.svc.result(ctx, st, nil)
		return
	case "submit":
	default:
		r.mu.Unlock()
		r.svc.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.BadRequest})
		return
	}
	cfg, err := applyConfig(r.cfg, x)
	if err != nil {
		r.mu.Unlock()
		r.svc.reply(ctx, st, *err)
		return
	}
	wasPersistent, wasMembersOnly, wasLocked := r.cfg.Persistent, r.cfg.MembersOnly, r.locked
	r.cfg, r.locked = cfg, false
	if cfg.MembersOnly && !wasMembersOnly {
		// §9.3: those who are not members leave (322).
		for _, o := range r.byNick {
			if r.affiliation(o.bare) == storage.AffNone {
				r.remove(o, "322", "", "the room is now for members only")
			}
		}
	}
	if !wasLocked {
		// §10.2.1: a configuration change, announced with 104.
		m := xmpp.NewElement(xmpp.NSClient, "message", "type", "groupchat", "from", r.bare)
		m.Add(xmpp.NewElement(NSUser, "x").Add(xmpp.NewElement(NSUser, "status", "code", "104")))
		f := xmpp.NewFanout(m)
		for _, o := range r.byNick {
			for _, s := range o.sessions {
				r.svc.deliver(s, f)
			}
		}
	}
	stored, affs := r.stored(), r.affList()
	r.mu.Unlock()
	r.svc.save(ctx, stored, affs)
	if wasPersistent && !cfg.Persistent && r.svc.Store != nil {
		r.svc.Store.DeleteRoom(ctx, r.bare)
	}
	r.svc.result(ctx, st, nil)
}

// configForm is the muc#roomconfig form with the current values (§10.2).
func (r *room) configForm() *xmpp.Element {
	c := r.cfg
	b := func(v bool) string { return pick(v, "1", "0") }
	x := xmpp.NewElement(NSData, "x", "type", "form")
	x.Add(xmpp.NewElement(NSData, "title").Add(xmpp.Text("Configuration of " + r.bare)))
	x.Add(field("FORM_TYPE", "hidden", NSConfig))
	x.Add(field("muc#roomconfig_roomname", "text-single", c.Name))
	x.Add(field("muc#roomconfig_roomdesc", "text-single", c.Description))
	x.Add(field("muc#roomconfig_persistentroom", "boolean", b(c.Persistent)))
	x.Add(field("muc#roomconfig_publicroom", "boolean", b(c.Public)))
	x.Add(field("muc#roomconfig_membersonly", "boolean", b(c.MembersOnly)))
	x.Add(field("muc#roomconfig_moderatedroom", "boolean", b(c.Moderated)))
	x.Add(field("muc#roomconfig_passwordprotectedroom", "boolean", b(c.Password != "")))
	x.Add(field("muc#roomconfig_roomsecret", "text-private", c.Password))
	x.Add(field("muc#roomconfig_maxusers", "text-single", strconv.Itoa(c.MaxOccupants)))
	x.Add(field("muc#roomconfig_whois", "list-single", c.WhoIs))
	x.Add(field("muc#roomconfig_allowinvites", "boolean", b(c.AllowInvites)))
	x.Add(field("muc#roomconfig_changesubject", "boolean", b(c.AllowSubjectChange)))
	x.Add(field("muc#maxhistoryfetch", "text-single", strconv.Itoa(c.HistoryLength)))
	x.Add(field("muc#roomconfig_allowpm", "list-single", c.AllowPM))
	return x
}

// applyConfig reads a submitted form over cfg; fields it does not know are
// ignored (XEP-0004 §3.2), values it cannot take are a bad request.
func applyConfig(cfg storage.RoomConfig, x *xmpp.Element) (storage.RoomConfig, *xmpp.StanzaError) {
	bad := func(f string) *xmpp.StanzaError {
		return &xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "bad value for " + f}
	}
	passwordOn := cfg.Password != ""
	for _, f := range x.Elements() {
		if f.Local != "field" {
			continue
		}
		name := f.Get("var")
		v := ""
		if el := f.Child(NSData, "value"); el != nil {
			v = el.Text()
		}
		boolean := func(dst *bool) *xmpp.StanzaError {
			switch v {
			case "1", "true":
				*dst = true
			case "0", "false":
				*dst = false
			default:
				return bad(name)
			}
			return nil
		}
		var err *xmpp.StanzaError
		switch name {
		case "muc#roomconfig_roomname":
			cfg.Name = v
		case "muc#roomconfig_roomdesc":
			cfg.Description = v
		case "muc#roomconfig_persistentroom":
			err = boolean(&cfg.Persistent)
		case "muc#roomconfig_publicroom":
			err = boolean(&cfg.Public)
		case "muc#roomconfig_membersonly":
			err = boolean(&cfg.MembersOnly)
		case "muc#roomconfig_moderatedroom":
			err = boolean(&cfg.Moderated)
		case "muc#roomconfig_passwordprotectedroom":
			err = boolean(&passwordOn)
		case "muc#roomconfig_roomsecret":
			cfg.Password = v
		case "muc#roomconfig_maxusers":
			n, perr := strconv.Atoi(strings.TrimSpace(v))
			if v == "" || strings.EqualFold(v, "none") {
				n, perr = 0, nil
			}
			if perr != nil || n < 0 {
				err = bad(name)
			}
			cfg.MaxOccupants = n
		case "muc#roomconfig_whois":
			if v != "moderators" && v != "anyone" {
				err = bad(name)
			}
			cfg.WhoIs = v
		case "muc#roomconfig_allowinvites":
			err = boolean(&cfg.AllowInvites)
		case "muc#roomconfig_changesubject":
			err = boolean(&cfg.AllowSubjectChange)
		case "muc#maxhistoryfetch", "muc#roomconfig_historylength":
			n, perr := strconv.Atoi(strings.TrimSpace(v))
			if perr != nil || n < 0 {
				err = bad(name)
			}
			cfg.HistoryLength = n
		case "muc#roomconfig_allowpm":
			switch v {
			case "anyone", "participants", "moderators", "none":
				cfg.AllowPM = v
			default:
				err = bad(name)
			}
		}
		if err != nil {
			return cfg, err
		}
	}
	if !passwordOn {
		cfg.Password = ""
	}
	return cfg, nil
}

// destroy ends the room (§10.9): every occupant gets unavailable with the
// reason and the alternate venue, and the stored room is deleted.
func (r *room) destroy(ctx context.Context, venue, reason string) {
	r.mu.Lock()
	for _, o := range r.byNick {
		x := xmpp.NewElement(NSUser, "x")
		x.Add(xmpp.NewElement(NSUser, "item", "affiliation", storage.AffNone, "role", roleNone))
		d := xmpp.NewElement(NSUser, "destroy")
		if venue != "" {
			d.Set("jid", venue)
		}
		if reason != "" {
			d.Add(xmpp.NewElement(NSUser, "reason").Add(xmpp.Text(reason)))
		}
		x.Add(d)
		p := xmpp.NewElement(xmpp.NSClient, "presence", "type", "unavailable", "from", r.occupantJID(o.nick))
		p.Add(x)
		f := xmpp.NewFanout(p)
		for _, s := range o.sessions {
			r.svc.deliver(s, f)
			r.svc.track(s.full, r, false)
		}
	}
	r.byNick = make(map[string]*occupant)
	r.byFull = make(map[string]*occupant)
	persistent := r.cfg.Persistent
	r.mu.Unlock()
	r.svc.remove(r)
	if persistent && r.svc.Store != nil {
		if err := r.svc.Store.DeleteRoom(ctx, r.bare); err != nil {
			r.svc.log.Warn("deleting room", "room", r.bare, "err", err)
		}
	}
}
