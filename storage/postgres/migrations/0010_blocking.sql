-- Block lists (storage.Blocking, XEP-0191): one row per account and
-- blocked JID, in the normalised form the module gives (bare, full, domain
-- or domain/resource).
CREATE TABLE block_items (
	owner      text COLLATE "C" NOT NULL,
	jid        text COLLATE "C" NOT NULL CHECK (jid <> ''),
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (owner, jid)
);
