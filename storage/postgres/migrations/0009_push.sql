-- Push notification registrations (storage.Push, XEP-0357): one row per
-- account, app server JID and node; fields is the publish-options form's
-- fields as a JSON array of {"var", "values"}.
CREATE TABLE push_registrations (
	owner      text COLLATE "C" NOT NULL,
	jid        text COLLATE "C" NOT NULL,
	node       text COLLATE "C" NOT NULL CHECK (node <> ''),
	fields     jsonb       NOT NULL DEFAULT '[]',
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (owner, jid, node)
);
