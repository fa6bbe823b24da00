-- Message archives (XEP-0313) of accounts and rooms, and accounts' archiving
-- preferences (storage.Archive).
--
-- The order of an archive is the byte order of id: COLLATE "C" on id (and on
-- the JIDs, so that comparisons never depend on the database's locale); at
-- is only a filter.
--
-- Indexes, each for one kind of query:
--   PRIMARY KEY (id)           the contract's ErrExists: an id is unique in
--                              the whole store, not only in one archive.
--   (owner, id)                every page without a time filter: the newest
--                              page (Last) is a backward index scan from the
--                              end of owner's range, a page after or before
--                              an id deep in the archive a descent to that id
--                              and Max+1 entries, whatever the depth. The
--                              existence check of AfterID/BeforeID is one
--                              probe of it too.
--   (owner, with_jid, id)      the same pages with a With filter.
--   (owner, at, id)            a Start/End window with no AfterID/BeforeID:
--                              the window is a range of this index, whose
--                              ids are read from the index alone, sorted,
--                              and only the page's rows read from the
--                              table. Its cost grows with the window (10,000
--                              messages: a few ms), not with the archive.
--                              With a position, the walk from it along
--                              (owner, id) finds the window at once, since
--                              ids and times grow together.
--   (at)                       PruneArchive by age across every archive,
--                              which (owner, at, id) cannot serve without
--                              knowing the owners.
CREATE TABLE archive_messages (
	id       text COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	owner    text COLLATE "C" NOT NULL CHECK (owner <> ''),
	with_jid text COLLATE "C" NOT NULL,
	at       timestamptz NOT NULL,
	-- The message serialised in the jabber:client namespace.
	data     bytea NOT NULL
);

CREATE INDEX archive_messages_owner_id ON archive_messages (owner, id);
CREATE INDEX archive_messages_owner_with ON archive_messages (owner, with_jid, id);
CREATE INDEX archive_messages_owner_at ON archive_messages (owner, at, id);
CREATE INDEX archive_messages_at ON archive_messages (at);

-- Archiving preferences (XEP-0313 §6); no row means none were ever set.
CREATE TABLE archive_prefs (
	owner        text COLLATE "C" PRIMARY KEY CHECK (owner <> ''),
	default_mode text NOT NULL CHECK (default_mode IN ('always', 'never', 'roster')),
	-- Bare JIDs, distinct and sorted.
	always       text[] COLLATE "C" NOT NULL DEFAULT '{}',
	never        text[] COLLATE "C" NOT NULL DEFAULT '{}'
);
