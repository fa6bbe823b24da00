-- HTTP upload slots (storage.Uploads, XEP-0363): one row per slot given;
-- uploaded is NULL while the slot is unused.
CREATE TABLE upload_slots (
	token        text COLLATE "C" PRIMARY KEY,
	owner        text COLLATE "C" NOT NULL,
	filename     text        NOT NULL,
	size         bigint      NOT NULL CHECK (size >= 0),
	content_type text        NOT NULL DEFAULT '',
	created      timestamptz NOT NULL,
	expires      timestamptz NOT NULL,
	uploaded     timestamptz
);

CREATE INDEX upload_slots_owner ON upload_slots (owner);
CREATE INDEX upload_slots_expires ON upload_slots (expires) WHERE uploaded IS NULL;
CREATE INDEX upload_slots_uploaded ON upload_slots (uploaded) WHERE uploaded IS NOT NULL;
