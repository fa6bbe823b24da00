-- Messages kept for accounts with no available resource (XEP-0160).
CREATE TABLE offline_messages (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	owner      text COLLATE "C" NOT NULL,
	data       bytea       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX offline_messages_owner ON offline_messages (owner, id);
