-- HTTP upload slots (storage.Uploads, XEP-0363): one row per slot given,
-- times in Unix microseconds; uploaded is NULL while the slot is unused.
CREATE TABLE upload_slots (
	token        TEXT    NOT NULL PRIMARY KEY,
	owner        TEXT    NOT NULL,
	filename     TEXT    NOT NULL,
	size         INTEGER NOT NULL CHECK (size >= 0),
	content_type TEXT    NOT NULL DEFAULT '',
	created      INTEGER NOT NULL,
	expires      INTEGER NOT NULL,
	uploaded     INTEGER
) STRICT;

CREATE INDEX upload_slots_owner ON upload_slots (owner);
CREATE INDEX upload_slots_expires ON upload_slots (expires) WHERE uploaded IS NULL;
CREATE INDEX upload_slots_uploaded ON upload_slots (uploaded) WHERE uploaded IS NOT NULL;
