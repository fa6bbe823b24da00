-- Accounts and their RFC 5802 SCRAM keys; never the password.
CREATE TABLE users (
	jid               TEXT    NOT NULL PRIMARY KEY,
	salt              BLOB    NOT NULL,
	iterations        INTEGER NOT NULL CHECK (iterations > 0),
	sha1_stored_key   BLOB    NOT NULL,
	sha1_server_key   BLOB    NOT NULL,
	sha256_stored_key BLOB    NOT NULL,
	sha256_server_key BLOB    NOT NULL,
	created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
) STRICT;
