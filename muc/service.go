package muc

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
	"github.com/xmppd/xmppd/xmpp/rsm"
)

// Namespaces of XEP-0045 and the XEPs it uses.
const (
	NS        = "http://jabber.org/protocol/muc"
	NSUser    = NS + "#user"
	NSOwner   = NS + "#owner"
	NSAdmin   = NS + "#admin"
	NSData    = form.NS
	NSDelay   = "urn:xmpp:delay"
	NSPing    = "urn:xmpp:ping"
	NSInfo    = "http://jabber.org/protocol/disco#info"
	NSItems   = "http://jabber.org/protocol/disco#items"
	NSConfig  = NS + "#roomconfig"
	NSRoomInf = NS + "#roominfo"
	NSRSM     = rsm.NS
	// NSVCard is vcard-temp (XEP-0054), whose requests to an occupant go
	// to its bare JID.
	NSVCard = "vcard-temp"
	// NSConference marks a direct invitation (XEP-0249).
	NSConference = "jabber:x:conference"
)

// DefaultHistory is how many messages a new room keeps for newcomers.
const DefaultHistory = 20

// DefaultMaxRoomsPerOwner is how many rooms one account may own before
// the service refuses to create another for it.
const DefaultMaxRoomsPerOwner = 100

// DefaultMaxRoomsPerSession is how many rooms one session (full JID) may
// be in at once: the bound the directed presence limit
// (roster.DefaultMaxDirected) sets for a session that sent its initial
// presence, kept here for one that did not, whose directed presence is not
// tracked (issue 21: such a session could join every room it could name).
const DefaultMaxRoomsPerSession = 100

// Service is the multi-user chat service. It is an xmpp.Module that adds
// itself as the component for Domain.
type Service struct {
	// Domain is the service's domain; default "conference." + the server's.
	Domain string
	// Store keeps persistent rooms; nil keeps every room in memory only.
	Store storage.Rooms
	// MaxRoomsPerOwner bounds the rooms an account owns: joining a room
	// that does not exist creates one only while the account owns fewer
	// (XEP-0045 §10.1.1 refuses with not-allowed; §14.6 suggests the
	// limit). Rooms made in storage by the server's administrators
	// (xmppctl, the admin API) are never refused, but count for their
	// owners. Zero means DefaultMaxRoomsPerOwner; negative, no limit.
	MaxRoomsPerOwner int
	// MaxRoomsPerSession bounds the rooms one session (full JID) is in on
	// this node; joining one more is refused with <policy-violation/>.
	// Zero means DefaultMaxRoomsPerSession; negative, no limit.
	MaxRoomsPerSession int
	// Mentions, when set, learns of groupchat messages that mention
	// members who are not in the room (push notifications).
	Mentions MentionFunc
	// Archive keeps the archives of the rooms whose configuration enables
	// archiving (XEP-0313, muc#roomconfig_enablearchiving: on by default
	// for persistent rooms); nil archives no room and offers no field.
	Archive storage.Archive
	// IDs makes the archive ids; share the account archive's generator
	// (one per process, mam.NewIDs). Nil: a generator of the service's own.
	IDs *mam.IDs
	// Hosting, when set, shares the rooms with the other nodes of a
	// cluster (cluster.go): this node serves only the rooms whose lease
	// it holds, and hands stanzas for the others to their hosts.
	Hosting Hosting

	srv *xmpp.Server
	log *slog.Logger

	mu    sync.Mutex
	rooms map[string]*room // by bare room JID
	// owned counts, per bare JID, the rooms in rooms that it owns.
	owned map[string]int
	// joined is, per occupant's full JID, the rooms it is in, so that a
	// session that ends leaves them.
	joined map[string]map[*room]struct{}
	// forwards are the IQs forwarded to occupants, waiting for answers.
	forwards *forwards
	// ids and archive (the batching writer) are set when Archive is.
	ids     *mam.IDs
	archive *mam.Writer
	// nodes are the nodes of occupant sessions on other nodes, by full
	// JID (nodeOf).
	nodes map[string]string
	// waiting are, per room, the stanzas waiting for a host that can be
	// reached (cluster.go).
	waiting map[string][]*xmpp.Element
	// deliverTo replaces delivery to sessions in benchmarks.
	deliverTo func(m member, b []byte) bool
}

// Register implements xmpp.Module.
func (s *Service) Register(srv *xmpp.Server) {
	s.srv = srv
	s.log = srv.Log().With("module", "muc")
	if s.Domain == "" {
		s.Domain = "conference." + srv.Domain
	}
	if s.MaxRoomsPerOwner == 0 {
		s.MaxRoomsPerOwner = DefaultMaxRoomsPerOwner
	}
	if s.MaxRoomsPerSession == 0 {
		s.MaxRoomsPerSession = DefaultMaxRoomsPerSession
	}
	s.rooms = make(map[string]*room)
	s.owned = make(map[string]int)
	s.joined = make(map[string]map[*room]struct{})
	s.forwards = newForwards()
	s.waiting = make(map[string][]*xmpp.Element)
	s.nodes = make(map[string]string)
	if s.Archive != nil {
		s.ids = s.IDs
		if s.ids == nil {
			s.ids = mam.NewIDs()
		}
		s.archive = mam.NewWriter(srv, s.Archive, s.log)
	}
	srv.AddComponent(s.Domain, s)
	srv.HookSession(xmpp.SessionEnded, 0, s.sessionEnded)
	srv.OnShutdown(s.shutdown)
	if s.clustered() {
		// Rooms are loaded by the node that takes their lease, when a
		// stanza comes for them.
		srv.HookTakenForGone(s.lostRooms)
		srv.HookSessionsGone(s.sessionsGone)
		s.registerCalls(srv)
		return
	}
	if s.Store != nil {
		stored, err := s.Store.ListRooms(srv.Context())
		if err != nil {
			s.log.Error("loading rooms", "err", err)
		}
		for _, r := range stored {
			rm, err := s.load(srv.Context(), r)
			if err != nil {
				s.log.Error("loading room", "room", r.JID, "err", err)
				continue
			}
			s.mu.Lock()
			s.adopt(rm)
			s.mu.Unlock()
		}
	}
}

// HandleStanza implements xmpp.Component.
func (s *Service) HandleStanza(ctx context.Context, st *xmpp.Element, to jid.JID, origin *xmpp.Session) {
	if s.clustered() && to.Localpart() != "" {
		if s.routeToHost(ctx, st, to) {
			return
		}
		// This node hosts the room: what the room sends goes over the bus
		// to whichever node, even for a stanza that came over it.
		ctx = s.srv.Context()
	}
	s.handleRoom(ctx, st, to, origin)
}

// handleRoom handles a stanza for the service or one of its rooms here.
func (s *Service) handleRoom(ctx context.Context, st *xmpp.Element, to jid.JID, origin *xmpp.Session) {
	from, err := jid.Parse(st.Get("from"))
	if err != nil {
		return
	}
	switch st.Get("type") {
	case "result", "error":
		// Answers to IQs forwarded to occupants come to the sender's
		// occupant JID; other answers and errors end here.
		if st.Local == "iq" && to.Resourcepart() != "" {
			s.answer(ctx, st, to, from)
		}
		return
	}
	if to.Localpart() == "" {
		s.toService(ctx, st, from)
		return
	}
	bare := to.Bare().String()
	r := s.lookup(ctx, bare)
	if st.Local == "presence" && st.Get("type") == "" && to.Resourcepart() != "" && !s.mayJoin(from.String(), r) {
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.PolicyViolationCond,
			Text: "this session is in " + strconv.Itoa(s.MaxRoomsPerSession) + " rooms, the most it may be in at once: leave one first"})
		if r == nil {
			s.release(ctx, bare)
		}
		return
	}
	if r == nil {
		if st.Local != "presence" || to.Resourcepart() == "" || st.Get("type") != "" {
			if st.Local != "presence" {
				s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ItemNotFound})
			}
			s.release(ctx, bare)
			return
		}
		if s.clustered() {
			// Only the lease's holder makes the room (the lease may have
			// moved since this node was found to hold it).
			if node, err := s.Hosting.HostRoom(ctx, bare); err != nil || node != s.srv.Node() {
				s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable, Text: "the room is being moved between nodes; try again"})
				return
			}
		}
		var serr *xmpp.StanzaError
		if r, serr = s.create(to.Bare(), from); serr != nil {
			s.reply(ctx, st, *serr)
			s.release(ctx, bare)
			return
		}
	}
	if st.Local == "iq" && to.Resourcepart() == "" && s.archive != nil {
		if q := payload(st); q != nil && q.Space == mam.NS {
			s.archiveIQ(ctx, r, st, q, from, origin)
			return
		}
	}
	r.handle(st, to, from, origin)
}

// lookup finds a room in memory or, failing that, in storage: a room
// created there (xmppctl room create) while the server runs.
func (s *Service) lookup(ctx context.Context, bare string) *room {
	s.mu.Lock()
	r := s.rooms[bare]
	s.mu.Unlock()
	if r != nil {
		return r
	}
	if s.clustered() {
		// Only the room's host serves it; a node that takes it over
		// finds what the previous one left (cluster.go).
		if node, err := s.Hosting.HostRoom(ctx, bare); err != nil || node != s.srv.Node() {
			return nil
		}
	}
	if s.Store == nil {
		if s.clustered() {
			s.ended(ctx, bare)
		}
		return nil
	}
	st, err := s.Store.Room(ctx, bare)
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			s.log.Warn("reading room", "room", bare, "err", err)
		} else if s.clustered() {
			s.ended(ctx, bare)
		}
		return nil
	}
	loaded, err := s.load(ctx, st)
	if err != nil {
		s.log.Warn("loading room", "room", bare, "err", err)
		return nil
	}
	if s.clustered() {
		s.takeOver(ctx, loaded)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.rooms[bare]; r != nil {
		return r
	}
	s.adopt(loaded)
	return loaded
}

// adopt adds a room that is not yet served, counting its owners. s.mu is
// held; nobody else knows the room yet.
func (s *Service) adopt(r *room) {
	s.rooms[r.bare] = r
	for _, o := range r.ownerJIDs() {
		s.owned[o]++
	}
}

// create makes a new, locked room owned by from, unless another was made
// meanwhile; an account that owns MaxRoomsPerOwner rooms already is
// refused (§10.1.1: room creation is restricted).
func (s *Service) create(room, creator jid.JID) (*room, *xmpp.StanzaError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	bare := room.String()
	if r := s.rooms[bare]; r != nil {
		return r, nil
	}
	owner := creator.Bare().String()
	if max := s.MaxRoomsPerOwner; max > 0 && s.owned[owner] >= max {
		return nil, &xmpp.StanzaError{Condition: xmpp.NotAllowed,
			Text: "you own " + strconv.Itoa(s.owned[owner]) + " rooms, the most this service allows (muc.max_rooms_per_owner): destroy one first"}
	}
	r := newRoom(s, room)
	r.locked = true
	r.created = time.Now().UTC()
	r.affs[owner] = storage.Affiliation{JID: owner, Affiliation: storage.AffOwner}
	s.adopt(r)
	return r, nil
}

func (s *Service) load(ctx context.Context, st storage.Room) (*room, error) {
	rj, err := jid.Parse(st.JID)
	if err != nil {
		return nil, err
	}
	affs, err := s.Store.Affiliations(ctx, st.JID)
	if err != nil {
		return nil, err
	}
	r := newRoom(s, rj)
	r.cfg, r.subject, r.subjectBy, r.created = st.Config, st.Subject, st.SubjectBy, st.Created
	for _, a := range affs {
		r.affs[a.JID] = a
	}
	return r, nil
}

// forget stops serving a room (destroyed, or temporary and empty) and
// its owners own one room less. r.mu is held (lock order: r.mu, then s.mu).
func (s *Service) forget(r *room) {
	r.gone = true
	if s.clustered() {
		room := r.bare
		r.later(func(ctx context.Context) { s.release(ctx, room) })
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.bare] != r {
		return
	}
	delete(s.rooms, r.bare)
	for _, o := range r.ownerJIDs() {
		s.uncount(o)
	}
}

// countOwner follows a change of ownership in a room the service serves.
// r.mu is held.
func (s *Service) countOwner(r *room, bare string, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rooms[r.bare] != r {
		return
	}
	if delta > 0 {
		s.owned[bare]++
	} else {
		s.uncount(bare)
	}
}

func (s *Service) uncount(bare string) {
	if s.owned[bare]--; s.owned[bare] <= 0 {
		delete(s.owned, bare)
	}
}

// mayJoin reports whether the session full may join r (nil: a room not
// made yet): it is in r already (a presence update, a nick change), or in
// fewer rooms than MaxRoomsPerSession.
func (s *Service) mayJoin(full string, r *room) bool {
	if s.MaxRoomsPerSession < 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rooms := s.joined[full]
	if _, in := rooms[r]; in && r != nil {
		return true
	}
	return len(rooms) < s.MaxRoomsPerSession
}

func (s *Service) track(full string, r *room, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rooms := s.joined[full]
	if in {
		if rooms == nil {
			rooms = make(map[*room]struct{})
			s.joined[full] = rooms
		}
		rooms[r] = struct{}{}
		return
	}
	delete(rooms, r)
	if len(rooms) == 0 {
		delete(s.joined, full)
		delete(s.nodes, full)
	}
}

// sessionEnded takes a session whose stream ended out of its rooms, as if it
// had sent unavailable presence (XEP-0045 §7.14 allows no less).
func (s *Service) sessionEnded(_ context.Context, sess *xmpp.Session) {
	full := sess.JID().String()
	s.mu.Lock()
	var rooms []*room
	for r := range s.joined[full] {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		r.leave(sess.JID(), "")
		r.unlock()
	}
}

// shutdown tells every occupant that it leaves because the service stops
// (status 332, XEP-0045 §7.14); persistent rooms stay in storage.
func (s *Service) shutdown() {
	if s.clustered() {
		s.leaveNode()
		return
	}
	s.mu.Lock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		for _, o := range r.byNick {
			r.remove(o, "332", "", "the service is shutting down")
		}
		r.unlock()
	}
}

// send routes a stanza the service makes.
func (s *Service) send(ctx context.Context, el *xmpp.Element) {
	s.srv.Router().Route(ctx, el, nil)
}

// deliver hands f to the router for one occupant session: through its
// local session when it joined from one, else by its address (a session
// elsewhere, or an occupant on another server). False when it is gone.
func (s *Service) deliver(m member, f xmpp.Fanout) bool {
	if s.deliverTo != nil {
		return s.deliverTo(m, f.For(m.full))
	}
	return s.srv.Router().DeliverFanout(s.srv.Context(), m.jid, m.sess, f)
}

// reply answers st with an error from its addressee. Rooms queue theirs
// with room.reply.
func (s *Service) reply(ctx context.Context, st *xmpp.Element, e xmpp.StanzaError) {
	if el := errorReply(st, e); el != nil {
		s.send(ctx, el)
	}
}

// errorReply is the error answering st, with the <x/> that presence
// errors carry (as in every example of one in XEP-0045 §7.2), or nil when
// st is itself an answer.
func errorReply(st *xmpp.Element, e xmpp.StanzaError) *xmpp.Element {
	if t := st.Get("type"); t == "error" || t == "result" {
		return nil
	}
	r := xmpp.ErrorReply(st, e)
	if st.Local == "presence" {
		r.Add(xmpp.NewElement(NS, "x"))
	}
	return r
}

// result answers an IQ with payload (nil for an empty result).
func (s *Service) result(ctx context.Context, iq *xmpp.Element, payload *xmpp.Element) {
	s.send(ctx, xmpp.ResultReply(iq, payload))
}

// toService handles stanzas to the service's own domain: discovery.
func (s *Service) toService(ctx context.Context, st *xmpp.Element, from jid.JID) {
	if st.Local == "message" && (directInvitation(st) || st.Child(NSUser, "x") != nil) {
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ItemNotFound, Text: "invitations go to users, not to this service"})
		return
	}
	if st.Local != "iq" {
		return
	}
	q := payload(st)
	switch {
	case st.Get("type") == "get" && q != nil && q.Space == NSInfo && q.Local == "query":
		res := xmpp.NewElement(NSInfo, "query")
		res.Add(xmpp.NewElement(NSInfo, "identity", "category", "conference", "type", "text", "name", "Chat rooms"))
		for _, f := range []string{NSInfo, NSItems, NS} {
			res.Add(xmpp.NewElement(NSInfo, "feature", "var", f))
		}
		s.result(ctx, st, res)
	case st.Get("type") == "get" && q != nil && q.Space == NSItems && q.Local == "query":
		rooms := s.publicRooms(ctx)
		page, set, err := paginate(rooms, q.Child(rsm.NS, "set"))
		if err != nil {
			s.reply(ctx, st, *err)
			return
		}
		res := xmpp.NewElement(NSItems, "query")
		for _, r := range page {
			res.Add(xmpp.NewElement(NSItems, "item", "jid", r.bare, "name", r.title()))
		}
		if set != nil {
			res.Add(set)
		}
		s.result(ctx, st, res)
	case st.Get("type") == "get" || st.Get("type") == "set":
		s.reply(ctx, st, xmpp.StanzaError{Condition: xmpp.ServiceUnavailable})
	}
}

func (s *Service) publicRooms(ctx context.Context) []*room {
	s.mu.Lock()
	var rooms []*room
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	s.mu.Unlock()
	if s.clustered() && s.Store != nil {
		// The persistent rooms other nodes host, or none does, from
		// storage: this node serves only those it hosts.
		served := make(map[string]bool, len(rooms))
		for _, r := range rooms {
			served[r.bare] = true
		}
		stored, err := s.Store.ListRooms(ctx)
		if err != nil {
			s.log.Warn("listing rooms", "err", err)
		}
		for _, st := range stored {
			if rj, err := jid.Parse(st.JID); err == nil && !served[st.JID] {
				r := newRoom(s, rj)
				r.cfg = st.Config
				rooms = append(rooms, r)
			}
		}
	}
	var public []*room
	for _, r := range rooms {
		if r.listed() {
			public = append(public, r)
		}
	}
	sort.Slice(public, func(i, j int) bool { return public[i].bare < public[j].bare })
	return public
}

// paginate cuts the room list as a Result Set Management request asks
// (XEP-0059 §2): max, after, before (empty: the last page) and index. The
// answer's set names the first and last item and the count; nil when the
// request had none.
func paginate(rooms []*room, set *xmpp.Element) ([]*room, *xmpp.Element, *xmpp.StanzaError) {
	req, ok, err := rsm.Parse(set)
	if !ok {
		return rooms, nil, nil
	}
	if err != nil {
		return nil, nil, &xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "bad RSM max or index"}
	}
	start, end := rsm.Page(len(rooms), func(i int) string { return rooms[i].bare }, req, len(rooms))
	page := rooms[start:end]
	res := rsm.Result{Index: start, Count: len(rooms)}
	if len(page) > 0 {
		res.First, res.Last = page[0].bare, page[len(page)-1].bare
	}
	return page, res.Element(), nil
}

// payload is an IQ's one child element, or nil.
func payload(iq *xmpp.Element) *xmpp.Element {
	els := iq.Elements()
	if len(els) != 1 {
		return nil
	}
	return els[0]
}

// save stores a persistent room; temporary rooms are not stored.
func (s *Service) save(ctx context.Context, r storage.Room, affs []storage.Affiliation) {
	if s.Store == nil || !r.Config.Persistent {
		return
	}
	if err := s.Store.SaveRoom(ctx, r); err != nil {
		s.log.Warn("saving room", "room", r.JID, "err", err)
		return
	}
	for _, a := range affs {
		if err := s.Store.SetAffiliation(ctx, r.JID, a); err != nil {
			s.log.Warn("saving affiliation", "room", r.JID, "jid", a.JID, "err", err)
		}
	}
}
