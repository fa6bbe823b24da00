-- Teams and projects of the app that owns the server, and their members.
-- The app may write these tables itself (docs/teams.md); the triggers below
-- tell running servers of every change with NOTIFY on channel xmppd_groups.
CREATE TABLE groups (
	id     text COLLATE "C" PRIMARY KEY CHECK (id <> ''),
	kind   text NOT NULL CHECK (kind IN ('team', 'project')),
	name   text NOT NULL,
	-- A project's team; deleting the team leaves the project without one.
	parent text COLLATE "C" REFERENCES groups (id) ON UPDATE CASCADE ON DELETE SET NULL,
	CHECK (parent IS NULL OR kind = 'project')
);

CREATE TABLE group_members (
	group_id text COLLATE "C" NOT NULL REFERENCES groups (id) ON UPDATE CASCADE ON DELETE CASCADE,
	jid      text COLLATE "C" NOT NULL,
	PRIMARY KEY (group_id, jid)
);

CREATE INDEX group_members_jid ON group_members (jid);

-- The payload is {"schema": …, "group": …, "jid": …} (jid "" when the group
-- itself changed): NOTIFY is database-wide, and a watcher ignores other
-- schemas. A payload must stay under 8000 bytes; rather than fail the write
-- over a very long ID, send group "" (anything may have changed). The
-- functions call only pg_catalog, so they work whatever the writer's
-- search_path.
CREATE FUNCTION xmppd_group_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	grps    text[];
	jids    text[];
	payload text;
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		IF TG_TABLE_NAME = 'groups' THEN
			grps := grps || OLD.id;
			jids := jids || ''::text;
		ELSE
			grps := grps || OLD.group_id;
			jids := jids || OLD.jid;
		END IF;
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		IF TG_TABLE_NAME = 'groups' THEN
			grps := grps || NEW.id;
			jids := jids || ''::text;
		ELSE
			grps := grps || NEW.group_id;
			jids := jids || NEW.jid;
		END IF;
	END IF;
	-- A TRUNCATE leaves both arrays NULL: one notice with group "".
	FOR i IN 1 .. coalesce(cardinality(grps), 0) LOOP
		payload := json_build_object('schema', TG_TABLE_SCHEMA, 'group', grps[i], 'jid', jids[i])::text;
		IF octet_length(payload) >= 8000 THEN
			grps := NULL;
			EXIT;
		END IF;
		PERFORM pg_notify('xmppd_groups', payload);
	END LOOP;
	IF grps IS NULL THEN
		PERFORM pg_notify('xmppd_groups',
			json_build_object('schema', TG_TABLE_SCHEMA, 'group', '', 'jid', '')::text);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER groups_notify AFTER INSERT OR UPDATE OR DELETE ON groups
	FOR EACH ROW EXECUTE FUNCTION xmppd_group_notify();
CREATE TRIGGER groups_truncate_notify AFTER TRUNCATE ON groups
	FOR EACH STATEMENT EXECUTE FUNCTION xmppd_group_notify();
CREATE TRIGGER group_members_notify AFTER INSERT OR UPDATE OR DELETE ON group_members
	FOR EACH ROW EXECUTE FUNCTION xmppd_group_notify();
CREATE TRIGGER group_members_truncate_notify AFTER TRUNCATE ON group_members
	FOR EACH STATEMENT EXECUTE FUNCTION xmppd_group_notify();
