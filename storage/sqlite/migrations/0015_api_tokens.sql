-- Bearer tokens of the admin HTTP API (storage.APITokens): the SHA-256 of
-- each token, never the token. created and last_used are Unix
-- microseconds; last_used is NULL for a token never used.
CREATE TABLE api_tokens (
	name      TEXT    NOT NULL PRIMARY KEY CHECK (name <> ''),
	hash      BLOB    NOT NULL UNIQUE,
	created   INTEGER NOT NULL,
	last_used INTEGER
) STRICT;
