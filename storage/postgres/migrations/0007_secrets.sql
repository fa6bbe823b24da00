-- The server's own random keys (storage.Secrets), shared by every node.
CREATE TABLE secrets (
	name       text COLLATE "C" PRIMARY KEY,
	value      bytea       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
