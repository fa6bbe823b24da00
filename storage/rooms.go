package storage

import (
	"context"
	"fmt"
	"time"
)

// Affiliations of a multi-user chat room (XEP-0045 §5.2).
const (
	AffOwner   = "owner"
	AffAdmin   = "admin"
	AffMember  = "member"
	AffOutcast = "outcast"
	AffNone    = "none"
)

// A Room is what persists of a multi-user chat room (XEP-0045): its
// configuration and subject. Occupants and history live in memory.
type Room struct {
	// JID is the room's bare JID ("team@conference.example.com"), already
	// normalised by the caller.
	JID    string
	Config RoomConfig
	// Subject and SubjectBy (the nick that set it) are the room's subject.
	Subject   string
	SubjectBy string
	// Created is when the room was created.
	Created time.Time
}

// RoomConfig is a room's muc#roomconfig (XEP-0045 §10.2). The zero value is
// a temporary, public, open room.
type RoomConfig struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
	Persistent  bool   `json:"persistent,omitempty"`
	Public      bool   `json:"public,omitempty"`
	MembersOnly bool   `json:"members_only,omitempty"`
	Moderated   bool   `json:"moderated,omitempty"`
	// Password protects the room when not empty; it is a shared secret
	// occupants type, so it is kept as it is.
	Password string `json:"password,omitempty"`
	// MaxOccupants is 0 for no limit.
	MaxOccupants int `json:"max_occupants,omitempty"`
	// WhoIs is "moderators" (semi-anonymous) or "anyone" (non-anonymous).
	WhoIs              string `json:"whois,omitempty"`
	AllowInvites       bool   `json:"allow_invites,omitempty"`
	AllowSubjectChange bool   `json:"allow_subject_change,omitempty"`
	// HistoryLength is how many messages the room keeps for newcomers.
	HistoryLength int `json:"history_length,omitempty"`
	// AllowPM is who may send private messages: "anyone", "participants",
	// "moderators" or "none".
	AllowPM string `json:"allow_pm,omitempty"`
	// Archiving is whether the room's groupchat is archived (XEP-0313):
	// ArchiveOn, ArchiveOff, or "" for the default, which follows
	// Persistent (see Archived). Rooms stored before the field existed
	// have "" and so get the default.
	Archiving string `json:"archiving,omitempty"`
}

// Values of RoomConfig.Archiving other than the default "".
const (
	ArchiveOn  = "on"
	ArchiveOff = "off"
)

// Archived tells whether the room's messages are archived: as Archiving
// says, or, when it says nothing, for persistent rooms only.
func (c RoomConfig) Archived() bool {
	switch c.Archiving {
	case ArchiveOn:
		return true
	case ArchiveOff:
		return false
	}
	return c.Persistent
}

// An Affiliation is a bare JID's lasting relation to a room.
type Affiliation struct {
	// JID is a bare JID (or a domain, for a server-wide ban), normalised.
	JID string
	// Affiliation is AffOwner, AffAdmin, AffMember or AffOutcast.
	Affiliation string
	// Nick is a member's reserved nick, if any.
	Nick string
	// Reason is why it was granted (shown for bans).
	Reason string
}

// Validate checks that a is a known affiliation (AffNone included: it
// removes one).
func (a Affiliation) Validate() error {
	switch a.Affiliation {
	case AffOwner, AffAdmin, AffMember, AffOutcast, AffNone:
		return nil
	}
	return fmt.Errorf("unknown affiliation %q", a.Affiliation)
}

// Rooms stores multi-user chat rooms and their affiliations.
type Rooms interface {
	// SaveRoom creates a room or replaces its configuration and subject.
	// Created is written by the first save (the time of the save if it is
	// zero) and kept by later ones. Backends keep it to the second at least
	// and return it in UTC.
	SaveRoom(ctx context.Context, r Room) error
	// Room returns one room; ErrNotFound if absent.
	Room(ctx context.Context, jid string) (Room, error)
	// ListRooms returns every stored room sorted by JID.
	ListRooms(ctx context.Context) ([]Room, error)
	// DeleteRoom removes a room, its affiliations and its message archive;
	// ErrNotFound if absent.
	DeleteRoom(ctx context.Context, jid string) error
	// SetAffiliation sets a JID's affiliation with a room, replacing the
	// one it had; AffNone removes it. ErrNotFound if the room is absent.
	SetAffiliation(ctx context.Context, room string, a Affiliation) error
	// Affiliations returns a room's affiliations sorted by JID; ErrNotFound
	// if the room is absent.
	Affiliations(ctx context.Context, room string) ([]Affiliation, error)
}
