-- Each account's roster (RFC 6121 §2). owner is a bare JID; it need not have
-- a row in users (accounts that sign in with the app's tokens have none), so
-- DeleteUser removes the items itself rather than by a foreign key.
CREATE TABLE roster_items (
	owner        text COLLATE "C" NOT NULL,
	contact      text COLLATE "C" NOT NULL,
	name         text    NOT NULL DEFAULT '',
	subscription text    NOT NULL DEFAULT 'none' CHECK (subscription IN ('none', 'to', 'from', 'both')),
	ask          boolean NOT NULL DEFAULT false,
	pending_in   boolean NOT NULL DEFAULT false,
	approved     boolean NOT NULL DEFAULT false,
	-- Written sorted and distinct.
	groups       text[]  NOT NULL DEFAULT '{}',
	PRIMARY KEY (owner, contact)
);
