-- Per-account XML documents (storage.XMLDocs): the vCard (XEP-0054, key
-- 'vcard-temp') and private XML storage (XEP-0049, key '{namespace}local'),
-- serialised as the modules give them.
CREATE TABLE xml_docs (
	owner      text COLLATE "C" NOT NULL,
	key        text COLLATE "C" NOT NULL CHECK (key <> ''),
	data       bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (owner, key)
);
