-- Invitations to in-band registration (storage.Invites): the SHA-256 of
-- each token, good once, until expires.
CREATE TABLE invites (
	hash    bytea       PRIMARY KEY,
	expires timestamptz NOT NULL
);

CREATE INDEX invites_expires ON invites (expires);
