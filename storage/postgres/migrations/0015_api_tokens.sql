-- Bearer tokens of the admin HTTP API (storage.APITokens): the SHA-256 of
-- each token, never the token. Names are COLLATE "C": ListAPITokens sorts
-- by byte order. last_used is NULL for a token never used.
CREATE TABLE api_tokens (
	name      text COLLATE "C" PRIMARY KEY CHECK (name <> ''),
	hash      bytea       NOT NULL UNIQUE,
	created   timestamptz NOT NULL,
	last_used timestamptz
);
