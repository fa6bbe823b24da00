-- Multi-user chat rooms (XEP-0045): what outlives the occupants, and the
-- lasting affiliations of bare JIDs with each room. Occupants and history
-- stay in memory.
CREATE TABLE rooms (
	jid        text COLLATE "C" PRIMARY KEY CHECK (jid <> ''),
	-- storage.RoomConfig by its json tags.
	config     jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
	subject    text        NOT NULL DEFAULT '',
	subject_by text        NOT NULL DEFAULT '',
	-- Written by the first save and kept by later ones.
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE room_affiliations (
	room        text COLLATE "C" NOT NULL REFERENCES rooms (jid) ON DELETE CASCADE,
	jid         text COLLATE "C" NOT NULL,
	-- XEP-0045 §5.2; "none" is the absence of a row.
	affiliation text NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
	nick        text NOT NULL DEFAULT '',
	reason      text NOT NULL DEFAULT '',
	PRIMARY KEY (room, jid)
);
