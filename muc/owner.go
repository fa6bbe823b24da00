package muc

import (
	"context"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"github.com/xmppd/xmppd/modules/mam"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
	"github.com/xmppd/xmppd/xmpp/form"
)

// owner handles the muc#owner namespace (§10): the configuration form,
// instant rooms and destruction. r.mu is held.
func (r *room) owner(st, q *xmpp.Element, typ string, from jid.JID) {
	if r.affiliation(from.Bare().String()) != storage.AffOwner {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.Forbidden, Text: "only owners may configure the room"})
		return
	}
	if typ == "get" {
		r.result(st, xmpp.NewElement(NSOwner, "query").Add(r.configForm().Element()))
		return
	}
	if d := q.Child(NSOwner, "destroy"); d != nil {
		reason := ""
		if el := d.Child(NSOwner, "reason"); el != nil {
			reason = el.Text()
		}
		r.destroy(d.Get("jid"), reason)
		r.result(st, nil)
		return
	}
	submitted, err := form.Parse(q.Child(form.NS, "x"))
	if err != nil {
		r.reply(st, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "a muc#owner set carries a data form or <destroy/>"})
		return
	}
	switch submitted.Type {
	case form.TypeCancel:
		// §10.1.3: cancelling the first configuration destroys the room.
		if r.locked {
			r.destroy("", "")
		}
		r.result(st, nil)
		return
	case form.TypeSubmit:
	default:
		r.reply(st, xmpp.StanzaError{Condition: xmpp.BadRequest, Text: "submit or cancel the form"})
		return
	}
	cfg, serr := applyConfig(r.cfg, submitted)
	if serr != nil {
		r.reply(st, *serr)
		return
	}
	r.reconfigure(cfg)
	r.result(st, nil)
}

// reconfigure gives the room a new configuration, from its owner's form or
// from the server's administrators (the admin API): those who may no longer
// stay leave, occupants hear of the change, storage follows. r.mu is held.
func (r *room) reconfigure(cfg storage.RoomConfig) {
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
				r.deliver(s, f)
			}
		}
	}
	stored, affs := r.stored(), r.affList()
	r.later(func(ctx context.Context) {
		r.svc.save(ctx, stored, affs)
		if wasPersistent && !cfg.Persistent && r.svc.Store != nil {
			if err := r.svc.Store.DeleteRoom(ctx, r.bare); err != nil {
				r.svc.log.Warn("deleting room", "room", r.bare, "err", err)
			}
		}
	})
}

// The choices of the list fields of the configuration form.
var (
	whoisOptions = []form.Option{
		{Label: "Moderators only", Value: "moderators"},
		{Label: "Anyone", Value: "anyone"},
	}
	allowPMOptions = []form.Option{
		{Label: "Anyone", Value: "anyone"},
		{Label: "Participants and moderators", Value: "participants"},
		{Label: "Moderators only", Value: "moderators"},
		{Label: "Nobody", Value: "none"},
	}
	maxUsersOptions = []form.Option{
		{Label: "10", Value: "10"}, {Label: "20", Value: "20"}, {Label: "30", Value: "30"},
		{Label: "50", Value: "50"}, {Label: "100", Value: "100"}, {Label: "200", Value: "200"},
		{Label: "500", Value: "500"}, {Label: "No limit", Value: "none"},
	}
)

// configForm is the muc#roomconfig form with the current values (§10.2).
// Field types and labels are those of the muc#roomconfig registry
// (§16.5.3); list fields offer their choices. r.mu is held.
func (r *room) configForm() *form.Form {
	c := r.cfg
	maxUsers := "none"
	if c.MaxOccupants > 0 {
		maxUsers = strconv.Itoa(c.MaxOccupants)
	}
	f := &form.Form{Type: form.TypeForm, Title: "Configuration of " + r.bare, FormType: NSConfig,
		Instructions: "Set up the room; it opens to others once this form is submitted."}
	f.AddText("muc#roomconfig_roomname", "Natural-Language Room Name", c.Name)
	f.AddText("muc#roomconfig_roomdesc", "Short Description of Room", c.Description)
	f.AddBool("muc#roomconfig_persistentroom", "Whether to Make Room Persistent", c.Persistent)
	f.AddBool("muc#roomconfig_publicroom", "Whether to Allow Public Searching for Room", c.Public)
	f.AddBool("muc#roomconfig_membersonly", "Whether to Make Room Members-Only", c.MembersOnly)
	f.AddBool("muc#roomconfig_moderatedroom", "Whether to Make Room Moderated", c.Moderated)
	f.AddBool("muc#roomconfig_passwordprotectedroom", "Whether a Password is Required to Enter", c.Password != "")
	f.AddPrivate("muc#roomconfig_roomsecret", "The Room Password", c.Password)
	f.AddList("muc#roomconfig_maxusers", "Maximum Number of Room Occupants", maxUsers, maxUsersOptions...)
	f.AddList("muc#roomconfig_whois", "Affiliations that May Discover Real JIDs of Occupants", c.WhoIs, whoisOptions...)
	f.AddBool("muc#roomconfig_allowinvites", "Whether to Allow Members to Invite Others", c.AllowInvites)
	f.AddBool("muc#roomconfig_changesubject", "Whether to Allow Occupants to Change Subject", c.AllowSubjectChange)
	f.AddText("muc#maxhistoryfetch", "Maximum Number of History Messages Returned by Room", strconv.Itoa(c.HistoryLength))
	f.AddList("muc#roomconfig_allowpm", "Roles that May Send Private Messages", c.AllowPM, allowPMOptions...)
	if r.svc.archive != nil {
		// Prosody's name for it; applyConfig takes ejabberd's too.
		f.AddBool(fieldArchiving, "Archive the room's messages on the server (XEP-0313)", c.Archived())
	}
	return f
}

// fieldArchiving turns the room archive on or off.
const fieldArchiving = "muc#roomconfig_enablearchiving"

// applyConfig reads a submitted form over cfg; fields it does not know are
// ignored (XEP-0004 §3.2), values it cannot take are refused with
// not-acceptable (§10.2).
func applyConfig(cfg storage.RoomConfig, submitted *form.Form) (storage.RoomConfig, *xmpp.StanzaError) {
	bad := func(f string) *xmpp.StanzaError {
		return &xmpp.StanzaError{Condition: xmpp.NotAcceptable, Text: "bad value for " + f}
	}
	passwordOn := cfg.Password != ""
	// The archiving field, when submitted: a value that is the default for
	// the room's (new) persistence keeps the default, so that it follows
	// the room being made persistent or temporary later; another value
	// sticks. What the owner was shown is what the room does either way.
	var archiving *bool
	for _, f := range submitted.Fields {
		name, v := f.Var, f.Value()
		boolean := func(dst *bool) *xmpp.StanzaError {
			b, err := form.ParseBool(v)
			if err != nil {
				return bad(name)
			}
			*dst = b
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
			v = strings.TrimSpace(v)
			if v == "" || strings.EqualFold(v, "none") {
				cfg.MaxOccupants = 0
				break
			}
			n, perr := strconv.Atoi(v)
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
		case fieldArchiving, "mam", "muc#roomconfig_mam":
			var on bool
			if err = boolean(&on); err == nil {
				archiving = &on
			}
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
	if archiving != nil {
		cfg.Archiving = ""
		if *archiving != cfg.Persistent {
			cfg.Archiving = pick(*archiving, storage.ArchiveOn, storage.ArchiveOff)
		}
	}
	return cfg, nil
}

// info is the room's disco#info with the muc#roominfo form (§6.4). Its
// identity is named with the room's title, so that clients have a name to
// show for a room that has none. r.mu is held.
func (r *room) info() *xmpp.Element {
	q := xmpp.NewElement(NSInfo, "query")
	q.Add(xmpp.NewElement(NSInfo, "identity", "category", "conference", "type", "text", "name", r.titleLocked()))
	features := []string{NS, NSInfo,
		pick(r.cfg.Persistent, "muc_persistent", "muc_temporary"),
		pick(r.cfg.Public, "muc_public", "muc_hidden"),
		pick(r.cfg.MembersOnly, "muc_membersonly", "muc_open"),
		pick(r.cfg.Moderated, "muc_moderated", "muc_unmoderated"),
		pick(r.cfg.Password != "", "muc_passwordprotected", "muc_unsecured"),
		pick(r.cfg.WhoIs == "anyone", "muc_nonanonymous", "muc_semianonymous"),
	}
	if r.archiving() {
		features = append(features, mam.NS, mam.NSExtended, mam.NSSID)
	}
	for _, f := range features {
		q.Add(xmpp.NewElement(NSInfo, "feature", "var", f))
	}
	q.Add(r.roomInfo().Element())
	return q
}

// roomInfo is the extended disco info of the room (XEP-0128), with the
// fields and labels of the muc#roominfo registry (§16.5.4). The room's
// configured name is given only when it has one: a client that finds an
// empty one would show no title at all. r.mu is held.
func (r *room) roomInfo() *form.Form {
	f := &form.Form{Type: form.TypeResult, FormType: NSRoomInf}
	f.AddText("muc#roominfo_description", "Short Description of Room", r.cfg.Description)
	f.AddText("muc#roominfo_subject", "Current Discussion Topic", r.subject)
	f.AddBool("muc#roominfo_subjectmod", "The room subject can be modified by participants", r.cfg.AllowSubjectChange)
	f.AddText("muc#roominfo_occupants", "Current Number of Occupants in Room", strconv.Itoa(len(r.byNick)))
	f.AddText("muc#maxhistoryfetch", "Maximum Number of History Messages Returned by Room", strconv.Itoa(r.cfg.HistoryLength))
	if r.cfg.Name != "" {
		f.AddText("muc#roomconfig_roomname", "Natural-Language Room Name", r.cfg.Name)
	}
	return f
}

func pick(b bool, yes, no string) string {
	if b {
		return yes
	}
	return no
}

// destroy ends the room (§10.9): every occupant gets unavailable with the
// reason and the alternate venue, the service forgets the room and the
// stored room is deleted. r.mu is held.
func (r *room) destroy(venue, reason string) {
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
			r.deliver(s, f)
			r.svc.track(s.full, r, false)
		}
	}
	r.byNick = make(map[string]*occupant)
	r.byFull = make(map[string]*occupant)
	r.svc.forget(r)
	persistent := r.cfg.Persistent && r.svc.Store != nil
	r.later(func(ctx context.Context) {
		// The archive goes with the room, after what is on its way there.
		r.svc.dropArchive(ctx, r.bare)
		if persistent {
			if err := r.svc.Store.DeleteRoom(ctx, r.bare); err != nil {
				r.svc.log.Warn("deleting room", "room", r.bare, "err", err)
			}
		}
	})
}
