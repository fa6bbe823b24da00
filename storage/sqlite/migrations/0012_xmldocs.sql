-- Per-account XML documents (storage.XMLDocs): the vCard (XEP-0054, key
-- 'vcard-temp') and private XML storage (XEP-0049, key '{namespace}local'),
-- serialised as the modules give them.
CREATE TABLE xml_docs (
	owner      TEXT NOT NULL,
	key        TEXT NOT NULL CHECK (key <> ''),
	data       BLOB NOT NULL,
	updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
	PRIMARY KEY (owner, key)
) STRICT;
