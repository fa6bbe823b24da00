-- Accounts and their RFC 5802 SCRAM keys; never the password.
-- COLLATE "C" so that ORDER BY jid is byte order whatever the database locale.
CREATE TABLE users (
	jid               text COLLATE "C" PRIMARY KEY,
	salt              bytea       NOT NULL,
	iterations        integer     NOT NULL CHECK (iterations > 0),
	sha1_stored_key   bytea       NOT NULL,
	sha1_server_key   bytea       NOT NULL,
	sha256_stored_key bytea       NOT NULL,
	sha256_server_key bytea       NOT NULL,
	created_at        timestamptz NOT NULL DEFAULT now()
);
