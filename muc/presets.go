package muc

import "github.com/xmppd/xmppd/storage"

// The two kinds of room a product usually wants (docs/muc.md).

// GroupConfig is a persistent group: members only, every member sees who
// the others really are, not listed in the room directory. Its member list
// is its affiliations, so members keep their place while offline.
func GroupConfig(name string) storage.RoomConfig {
	return storage.RoomConfig{
		Name: name, Persistent: true, MembersOnly: true, WhoIs: "anyone",
		AllowInvites: false, HistoryLength: 50, AllowPM: "anyone",
	}
}

// DefaultMaxOccupants bounds a chat room unless told otherwise.
const DefaultMaxOccupants = 200

// ChatRoomConfig is an open chat room: public, anyone may join under a
// nick, real JIDs are for moderators, at most max occupants (0: the
// default).
func ChatRoomConfig(name string, max int) storage.RoomConfig {
	if max <= 0 {
		max = DefaultMaxOccupants
	}
	return storage.RoomConfig{
		Name: name, Persistent: true, Public: true, WhoIs: "moderators", MaxOccupants: max,
		AllowInvites: true, HistoryLength: DefaultHistory, AllowPM: "participants",
	}
}
