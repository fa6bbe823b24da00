-- Messages kept for accounts with no available resource (XEP-0160).
-- AUTOINCREMENT so that an ID is never reused, even after the newest message
-- is deleted: a client that acknowledged "up to N" must not lose a later one.
CREATE TABLE offline_messages (
	id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	owner      TEXT    NOT NULL,
	data       BLOB    NOT NULL,
	created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;

CREATE INDEX offline_messages_owner ON offline_messages (owner, id);
