package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/muc"
	"github.com/xmppd/xmppd/storage"
)

// rooms is the API's rooms area: the two kinds of room docs/muc.md
// describes (a members-only group, an open chat room), made, changed and
// destroyed through the running service so that occupants see each change
// (XEP-0045 §10.2.1, §10.9).
type rooms struct{ a *API }

func (p rooms) routes() []route {
	return []route{
		{method: "GET", path: "/rooms", h: p.list},
		{method: "POST", path: "/rooms", change: true, h: p.create},
		{method: "GET", path: "/rooms/{room}", h: p.get},
		{method: "PATCH", path: "/rooms/{room}", change: true, h: p.configure},
		{method: "DELETE", path: "/rooms/{room}", change: true, h: p.destroy},
		{method: "GET", path: "/rooms/{room}/members", h: p.members},
		{method: "PUT", path: "/rooms/{room}/members/{jid}", change: true, h: p.setMember},
		{method: "DELETE", path: "/rooms/{room}/members/{jid}", change: true, h: p.removeMember},
	}
}

// Room kinds (muc.GroupConfig, muc.ChatRoomConfig).
const (
	roomGroup = "group"
	roomChat  = "chat"
)

// maxRoomText bounds a room's name and description (in characters).
const maxRoomText = 1024

// Room is a room as the API shows it.
type Room struct {
	JID       string     `json:"jid"`
	Kind      string     `json:"kind"`
	Config    RoomConfig `json:"config"`
	Subject   string     `json:"subject,omitempty"`
	Created   time.Time  `json:"created"`
	Occupants int        `json:"occupants"`
	// Members are the affiliations, by GET /rooms/{room} and on creation.
	Members []RoomMember `json:"members,omitempty"`
}

// RoomConfig is storage.RoomConfig with every field shown.
type RoomConfig struct {
	Name               string `json:"name"`
	Description        string `json:"description"`
	Persistent         bool   `json:"persistent"`
	Public             bool   `json:"public"`
	MembersOnly        bool   `json:"members_only"`
	Moderated          bool   `json:"moderated"`
	Password           string `json:"password"`
	MaxOccupants       int    `json:"max_occupants"`
	WhoIs              string `json:"whois"`
	AllowInvites       bool   `json:"allow_invites"`
	AllowSubjectChange bool   `json:"allow_subject_change"`
	HistoryLength      int    `json:"history_length"`
	AllowPM            string `json:"allow_pm"`
	Archived           bool   `json:"archived"`
}

// RoomMember is one affiliation.
type RoomMember struct {
	JID         string `json:"jid"`
	Affiliation string `json:"affiliation"`
	Nick        string `json:"nick,omitempty"`
	Reason      string `json:"reason,omitempty"`
}

func roomOf(st muc.RoomState, withMembers bool) Room {
	c := st.Config
	kind := roomChat
	if c.MembersOnly {
		kind = roomGroup
	}
	r := Room{JID: st.JID, Kind: kind, Subject: st.Subject, Created: st.Created, Occupants: st.Occupants,
		Config: RoomConfig{Name: c.Name, Description: c.Description, Persistent: c.Persistent, Public: c.Public,
			MembersOnly: c.MembersOnly, Moderated: c.Moderated, Password: c.Password, MaxOccupants: c.MaxOccupants,
			WhoIs: c.WhoIs, AllowInvites: c.AllowInvites, AllowSubjectChange: c.AllowSubjectChange,
			HistoryLength: c.HistoryLength, AllowPM: c.AllowPM, Archived: c.Archived()}}
	if withMembers {
		r.Members = []RoomMember{}
		for _, a := range st.Affiliations {
			r.Members = append(r.Members, RoomMember{JID: a.JID, Affiliation: a.Affiliation, Nick: a.Nick, Reason: a.Reason})
		}
	}
	return r
}

// service is the chat service; 404 when the server runs none.
func (a *API) service() (*muc.Service, error) {
	if a.Rooms != nil {
		return a.Rooms, nil
	}
	if a.Server != nil {
		for _, m := range a.Server.Modules {
			if s, ok := m.(*muc.Service); ok {
				return s, nil
			}
		}
	}
	return nil, notFound("this server runs no multi-user chat service")
}

// roomJID reads a room's name or JID on the service (400 naming field).
func roomJID(svc *muc.Service, field, s string) (string, error) {
	if s != "" && !strings.Contains(s, "@") {
		s += "@" + svc.Domain
	}
	j, err := jid.Parse(s)
	if err != nil || j.Localpart() == "" || j.Resourcepart() != "" || j.Domainpart() != svc.Domain {
		return "", invalid(field, "%q is not a room of %s", s, svc.Domain)
	}
	return j.String(), nil
}

// pathRoom is the request's {room} with its service.
func (a *API) pathRoom(r *http.Request) (*muc.Service, string, error) {
	svc, err := a.service()
	if err != nil {
		return nil, "", err
	}
	rj, err := roomJID(svc, "room", r.PathValue("room"))
	return svc, rj, err
}

// pathRoomState is pathRoom and the room's state; a 404 when there is no
// such room.
func (a *API) pathRoomState(r *http.Request) (*muc.Service, string, muc.RoomState, error) {
	svc, rj, err := a.pathRoom(r)
	if err != nil {
		return nil, "", muc.RoomState{}, err
	}
	st, err := svc.Room(r.Context(), rj)
	if err != nil {
		return nil, "", muc.RoomState{}, roomError(err, rj)
	}
	return svc, rj, st, nil
}

// roomError turns the service's errors into the API's.
func roomError(err error, room string) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return notFound("no room %s", room)
	case errors.Is(err, storage.ErrExists):
		return conflict("room %s exists", room)
	case errors.Is(err, muc.ErrLastOwner):
		return conflict("room %s keeps at least one owner", room)
	}
	return err
}

func (p rooms) list(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := paging(r)
	if err != nil {
		return err
	}
	svc, err := p.a.service()
	if err != nil {
		return err
	}
	all, err := svc.Rooms(r.Context())
	if err != nil {
		return err
	}
	byJID := make(map[string]muc.RoomState, len(all))
	keys := make([]string, 0, len(all))
	for _, st := range all {
		byJID[st.JID] = st
		keys = append(keys, st.JID)
	}
	keys, next := pageOf(keys, cursor, limit)
	page := Page[Room]{Items: []Room{}, NextCursor: next}
	for _, k := range keys {
		page.Items = append(page.Items, roomOf(byJID[k], false))
	}
	return writeJSON(w, http.StatusOK, page)
}

// createRoom is the body of POST /rooms.
type createRoom struct {
	// Room is the room's name on the service ("design") or its JID.
	Room string `json:"room"`
	Kind string `json:"kind"`
	// Name is the room's title; Description its description.
	Name        string `json:"name"`
	Description string `json:"description"`
	// MaxOccupants bounds a chat room (0: muc.DefaultMaxOccupants).
	MaxOccupants int      `json:"max_occupants"`
	Owners       []string `json:"owners"`
	Members      []string `json:"members"`
}

func (p rooms) create(w http.ResponseWriter, r *http.Request) error {
	var req createRoom
	if err := decode(r, &req); err != nil {
		return err
	}
	svc, err := p.a.service()
	if err != nil {
		return err
	}
	rj, err := roomJID(svc, "room", req.Room)
	if err != nil {
		return err
	}
	var cfg storage.RoomConfig
	switch req.Kind {
	case roomGroup, "":
		if req.MaxOccupants != 0 {
			return invalid("max_occupants", "is for chat rooms; a group has its members")
		}
		req.Kind = roomGroup
		cfg = muc.GroupConfig(req.Name)
	case roomChat:
		if req.MaxOccupants < 0 {
			return invalid("max_occupants", "must not be negative")
		}
		cfg = muc.ChatRoomConfig(req.Name, req.MaxOccupants)
	default:
		return invalid("kind", "must be %s or %s", roomGroup, roomChat)
	}
	if err := checkText("name", req.Name); err != nil {
		return err
	}
	if err := checkText("description", req.Description); err != nil {
		return err
	}
	cfg.Description = req.Description
	owners, err := p.a.memberList("owners", req.Owners)
	if err != nil {
		return err
	}
	members, err := p.a.memberList("members", req.Members)
	if err != nil {
		return err
	}
	var affs []storage.Affiliation
	for _, o := range owners {
		affs = append(affs, storage.Affiliation{JID: o, Affiliation: storage.AffOwner})
	}
	for i, m := range members {
		for _, o := range owners {
			if o == m {
				return invalid(fmt.Sprintf("members[%d]", i), "%s is an owner already", m)
			}
		}
		affs = append(affs, storage.Affiliation{JID: m, Affiliation: storage.AffMember})
	}
	if err := svc.CreateRoom(r.Context(), storage.Room{JID: rj, Config: cfg}, affs); err != nil {
		return roomError(err, rj)
	}
	st, err := svc.Room(r.Context(), rj)
	if err != nil {
		return roomError(err, rj)
	}
	return writeJSON(w, http.StatusCreated, roomOf(st, true))
}

// checkText is a 400 for a name or description that is too long.
func checkText(field, s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxRoomText {
		return invalid(field, "must be UTF-8 of at most %d characters", maxRoomText)
	}
	return nil
}

func (p rooms) get(w http.ResponseWriter, r *http.Request) error {
	_, _, st, err := p.a.pathRoomState(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, roomOf(st, true))
}

// roomPatch is the body of PATCH /rooms/{room}: the fields to change.
type roomPatch struct {
	Name               *string `json:"name"`
	Description        *string `json:"description"`
	Persistent         *bool   `json:"persistent"`
	Public             *bool   `json:"public"`
	MembersOnly        *bool   `json:"members_only"`
	Moderated          *bool   `json:"moderated"`
	Password           *string `json:"password"`
	MaxOccupants       *int    `json:"max_occupants"`
	WhoIs              *string `json:"whois"`
	AllowInvites       *bool   `json:"allow_invites"`
	AllowSubjectChange *bool   `json:"allow_subject_change"`
	HistoryLength      *int    `json:"history_length"`
	AllowPM            *string `json:"allow_pm"`
	Archived           *bool   `json:"archived"`
}

// apply checks every field (400 naming it) and returns c changed.
func (q roomPatch) apply(c storage.RoomConfig) (storage.RoomConfig, error) {
	set := func(dst *string, v *string, field string) error {
		if v == nil {
			return nil
		}
		if err := checkText(field, *v); err != nil {
			return err
		}
		*dst = *v
		return nil
	}
	for _, f := range []struct {
		dst   *string
		v     *string
		field string
	}{{&c.Name, q.Name, "name"}, {&c.Description, q.Description, "description"}, {&c.Password, q.Password, "password"}} {
		if err := set(f.dst, f.v, f.field); err != nil {
			return c, err
		}
	}
	for _, f := range []struct {
		dst *bool
		v   *bool
	}{{&c.Persistent, q.Persistent}, {&c.Public, q.Public}, {&c.MembersOnly, q.MembersOnly},
		{&c.Moderated, q.Moderated}, {&c.AllowInvites, q.AllowInvites}, {&c.AllowSubjectChange, q.AllowSubjectChange}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
	if v := q.MaxOccupants; v != nil {
		if *v < 0 {
			return c, invalid("max_occupants", "must not be negative (0: no limit)")
		}
		c.MaxOccupants = *v
	}
	if v := q.HistoryLength; v != nil {
		if *v < 0 || *v > 1000 {
			return c, invalid("history_length", "must be from 0 to 1000")
		}
		c.HistoryLength = *v
	}
	if v := q.WhoIs; v != nil {
		if *v != "moderators" && *v != "anyone" {
			return c, invalid("whois", "must be moderators or anyone")
		}
		c.WhoIs = *v
	}
	if v := q.AllowPM; v != nil {
		switch *v {
		case "anyone", "participants", "moderators", "none":
		default:
			return c, invalid("allow_pm", "must be anyone, participants, moderators or none")
		}
		c.AllowPM = *v
	}
	if q.Archived != nil {
		c.Archiving = storage.ArchiveOff
		if *q.Archived {
			c.Archiving = storage.ArchiveOn
		}
	}
	if c.Archiving != "" && (c.Archiving == storage.ArchiveOn) == c.Persistent {
		c.Archiving = "" // the default for its persistence: it follows it (owner.go)
	}
	return c, nil
}

func (p rooms) configure(w http.ResponseWriter, r *http.Request) error {
	var q roomPatch
	if err := decode(r, &q); err != nil {
		return err
	}
	svc, rj, st, err := p.a.pathRoomState(r)
	if err != nil {
		return err
	}
	cfg, err := q.apply(st.Config)
	if err != nil {
		return err
	}
	if err := svc.Configure(r.Context(), rj, cfg); err != nil {
		return roomError(err, rj)
	}
	if st, err = svc.Room(r.Context(), rj); err != nil {
		return roomError(err, rj)
	}
	return writeJSON(w, http.StatusOK, roomOf(st, false))
}

// destroy ends a room; ?reason= is what occupants are told (§10.9).
func (p rooms) destroy(w http.ResponseWriter, r *http.Request) error {
	svc, rj, err := p.a.pathRoom(r)
	if err != nil {
		return err
	}
	reason := r.URL.Query().Get("reason")
	if err := checkText("reason", reason); err != nil {
		return err
	}
	if err := svc.Destroy(r.Context(), rj, reason); err != nil {
		return roomError(err, rj)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (p rooms) members(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := paging(r)
	if err != nil {
		return err
	}
	_, _, st, err := p.a.pathRoomState(r)
	if err != nil {
		return err
	}
	byJID := make(map[string]RoomMember)
	var keys []string
	for _, m := range roomOf(st, true).Members {
		byJID[m.JID] = m
		keys = append(keys, m.JID)
	}
	keys, next := pageOf(keys, cursor, limit)
	page := Page[RoomMember]{Items: []RoomMember{}, NextCursor: next}
	for _, k := range keys {
		page.Items = append(page.Items, byJID[k])
	}
	return writeJSON(w, http.StatusOK, page)
}

// setMember gives an account an affiliation: {"affiliation": "owner",
// "admin", "member" or "outcast", "reason": ...}.
func (p rooms) setMember(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Affiliation string `json:"affiliation"`
		Reason      string `json:"reason"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	switch req.Affiliation {
	case storage.AffOwner, storage.AffAdmin, storage.AffMember, storage.AffOutcast:
	default:
		return invalid("affiliation", "must be owner, admin, member or outcast")
	}
	if err := checkText("reason", req.Reason); err != nil {
		return err
	}
	return p.affiliate(w, r, req.Affiliation, req.Reason)
}

func (p rooms) removeMember(w http.ResponseWriter, r *http.Request) error {
	return p.affiliate(w, r, storage.AffNone, "")
}

func (p rooms) affiliate(w http.ResponseWriter, r *http.Request, aff, reason string) error {
	svc, rj, err := p.a.pathRoom(r)
	if err != nil {
		return err
	}
	// A ban may name a whole server; other affiliations are accounts.
	j, err := jid.Parse(r.PathValue("jid"))
	if err != nil || j.Resourcepart() != "" {
		return invalid("jid", "%q is not a bare JID", r.PathValue("jid"))
	}
	bare := j.String()
	if aff == storage.AffNone {
		st, err := svc.Room(r.Context(), rj)
		if err != nil {
			return roomError(err, rj)
		}
		found := false
		for _, a := range st.Affiliations {
			found = found || a.JID == bare
		}
		if !found {
			return notFound("%s has no affiliation with %s", bare, rj)
		}
	}
	err = svc.SetAffiliations(r.Context(), rj, []storage.Affiliation{{JID: bare, Affiliation: aff, Reason: reason}})
	if err != nil {
		return roomError(err, rj)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
