-- Each account's roster (RFC 6121 §2). owner is a bare JID; it need not have
-- a row in users (accounts that sign in with the app's tokens have none), so
-- DeleteUser removes the items itself rather than by a foreign key.
CREATE TABLE roster_items (
	owner        TEXT    NOT NULL,
	contact      TEXT    NOT NULL,
	name         TEXT    NOT NULL DEFAULT '',
	subscription TEXT    NOT NULL DEFAULT 'none' CHECK (subscription IN ('none', 'to', 'from', 'both')),
	ask          INTEGER NOT NULL DEFAULT 0 CHECK (ask IN (0, 1)),
	pending_in   INTEGER NOT NULL DEFAULT 0 CHECK (pending_in IN (0, 1)),
	approved     INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)),
	-- A JSON array of group names, written sorted and distinct.
	groups       TEXT    NOT NULL DEFAULT '[]',
	PRIMARY KEY (owner, contact)
) STRICT;
