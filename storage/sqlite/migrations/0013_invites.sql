-- Invitations to in-band registration (storage.Invites): the SHA-256 of
-- each token, good once, until expires (Unix microseconds).
CREATE TABLE invites (
	hash    BLOB    NOT NULL PRIMARY KEY,
	expires INTEGER NOT NULL
) STRICT;

CREATE INDEX invites_expires ON invites (expires);
