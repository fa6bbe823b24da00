-- Multi-user chat rooms (XEP-0045): what outlives the occupants, and the
-- lasting affiliations of bare JIDs with each room. Occupants and history
-- stay in memory.
CREATE TABLE rooms (
	jid        TEXT    NOT NULL PRIMARY KEY CHECK (jid <> ''),
	-- storage.RoomConfig as a JSON object, by its json tags.
	config     TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
	subject    TEXT    NOT NULL DEFAULT '',
	subject_by TEXT    NOT NULL DEFAULT '',
	-- Unix seconds, written by the first save and kept by later ones.
	created_at INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
) STRICT;

CREATE TABLE room_affiliations (
	room        TEXT NOT NULL REFERENCES rooms (jid) ON DELETE CASCADE,
	jid         TEXT NOT NULL,
	-- XEP-0045 §5.2; "none" is the absence of a row.
	affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
	nick        TEXT NOT NULL DEFAULT '',
	reason      TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (room, jid)
) STRICT;
