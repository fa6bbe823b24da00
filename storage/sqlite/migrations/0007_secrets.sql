-- The server's own random keys (storage.Secrets).
CREATE TABLE secrets (
	name       TEXT NOT NULL PRIMARY KEY,
	value      BLOB NOT NULL,
	created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
