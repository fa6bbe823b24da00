-- Block lists (storage.Blocking, XEP-0191): one row per account and
-- blocked JID, in the normalised form the module gives (bare, full, domain
-- or domain/resource).
CREATE TABLE block_items (
	owner      TEXT NOT NULL,
	jid        TEXT NOT NULL CHECK (jid <> ''),
	created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
	PRIMARY KEY (owner, jid)
) STRICT;
