-- Push notification registrations (storage.Push, XEP-0357): one row per
-- account, app server JID and node; fields is the publish-options form's
-- fields as a JSON array of {"var", "values"}.
CREATE TABLE push_registrations (
	owner      TEXT NOT NULL,
	jid        TEXT NOT NULL,
	node       TEXT NOT NULL CHECK (node <> ''),
	fields     TEXT NOT NULL DEFAULT '[]',
	created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
	PRIMARY KEY (owner, jid, node)
) STRICT;
