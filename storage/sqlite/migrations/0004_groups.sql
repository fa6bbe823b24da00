-- Teams and projects of the app that owns the server, and their members.
-- The app may write these tables itself (docs/teams.md); the triggers below
-- record every change in group_changes, which running servers poll.
CREATE TABLE groups (
	id     TEXT NOT NULL PRIMARY KEY CHECK (id <> ''),
	kind   TEXT NOT NULL CHECK (kind IN ('team', 'project')),
	name   TEXT NOT NULL,
	-- A project's team; deleting the team leaves the project without one.
	parent TEXT REFERENCES groups (id) ON UPDATE CASCADE ON DELETE SET NULL,
	CHECK (parent IS NULL OR kind = 'project')
) STRICT;

CREATE TABLE group_members (
	group_id TEXT NOT NULL REFERENCES groups (id) ON UPDATE CASCADE ON DELETE CASCADE,
	jid      TEXT NOT NULL,
	PRIMARY KEY (group_id, jid)
) STRICT;

CREATE INDEX group_members_jid ON group_members (jid);

-- One row per changed group ('' jid) or membership, which watchers poll. at
-- is Unix seconds, for pruning. AUTOINCREMENT never reuses an ID, and as
-- writers are serialised IDs follow commit order without gaps, so a watcher
-- that finds a gap after the last ID it read knows rows were pruned first.
CREATE TABLE group_changes (
	id       INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	group_id TEXT    NOT NULL,
	jid      TEXT    NOT NULL,
	at       INTEGER NOT NULL DEFAULT (CAST(strftime('%s', 'now') AS INTEGER))
) STRICT;

CREATE TRIGGER groups_insert AFTER INSERT ON groups BEGIN
	INSERT INTO group_changes (group_id, jid) VALUES (NEW.id, '');
END;

CREATE TRIGGER groups_update AFTER UPDATE ON groups BEGIN
	INSERT INTO group_changes (group_id, jid) VALUES (OLD.id, '');
	INSERT INTO group_changes (group_id, jid) SELECT NEW.id, '' WHERE NEW.id <> OLD.id;
END;

CREATE TRIGGER groups_delete AFTER DELETE ON groups BEGIN
	INSERT INTO group_changes (group_id, jid) VALUES (OLD.id, '');
END;

CREATE TRIGGER group_members_insert AFTER INSERT ON group_members BEGIN
	INSERT INTO group_changes (group_id, jid) VALUES (NEW.group_id, NEW.jid);
END;

CREATE TRIGGER group_members_update AFTER UPDATE ON group_members BEGIN
	INSERT INTO group_changes (group_id, jid) VALUES (OLD.group_id, OLD.jid), (NEW.group_id, NEW.jid);
END;

CREATE TRIGGER group_members_delete AFTER DELETE ON group_members BEGIN
	INSERT INTO group_changes (group_id, jid) VALUES (OLD.group_id, OLD.jid);
END;
