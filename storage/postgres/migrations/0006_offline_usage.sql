-- What all offline queues hold together, for the server-wide cap on offline
-- storage (storage.OfflineLimits.TotalBytes), shared by every node on this
-- database. Counting the rows at each store would read the whole table
-- (count(*) of 1,000,000 rows: 130-250 ms here; this: under 1 ms). Triggers
-- keep the counts, so that every way a message comes or goes counts:
-- StoreOffline, DeleteOffline, DeleteUser, TRUNCATE, or an operator's SQL.
--
-- The counts are spread over 64 rows by a hash of the owner and the total is
-- their sum: one row would make every store in the cluster wait for the
-- previous one's commit to release its lock (16 concurrent stores: about a
-- quarter of the rate without the counter, against four fifths with 64 rows).
-- A row may go below zero if the hash changes between a store and its
-- delete (a major upgrade); the sum stays right.
CREATE TABLE offline_usage (
	slot     integer PRIMARY KEY CHECK (slot BETWEEN 0 AND 63),
	messages bigint NOT NULL DEFAULT 0,
	bytes    bigint NOT NULL DEFAULT 0
);

INSERT INTO offline_usage (slot) SELECT generate_series(0, 63);

-- search_path FROM CURRENT: the functions find offline_usage in the schema
-- this migration ran in, whatever the path of the session that fires them.
CREATE FUNCTION offline_usage_insert() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
	UPDATE offline_usage u SET messages = u.messages + t.n, bytes = u.bytes + t.b
	FROM (SELECT hashtext(owner) & 63 AS slot, count(*) AS n, sum(octet_length(data)) AS b
	      FROM new_rows GROUP BY 1) t
	WHERE u.slot = t.slot;
	RETURN NULL;
END $$;

CREATE FUNCTION offline_usage_delete() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
	UPDATE offline_usage u SET messages = u.messages - t.n, bytes = u.bytes - t.b
	FROM (SELECT hashtext(owner) & 63 AS slot, count(*) AS n, sum(octet_length(data)) AS b
	      FROM old_rows GROUP BY 1) t
	WHERE u.slot = t.slot;
	RETURN NULL;
END $$;

CREATE FUNCTION offline_usage_update() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
	UPDATE offline_usage u SET messages = u.messages + t.n, bytes = u.bytes + t.b
	FROM (SELECT slot, sum(n) AS n, sum(b) AS b FROM (
		SELECT hashtext(owner) & 63 AS slot, 1 AS n, octet_length(data)::bigint AS b FROM new_rows
		UNION ALL
		SELECT hashtext(owner) & 63, -1, -octet_length(data)::bigint FROM old_rows) d GROUP BY 1) t
	WHERE u.slot = t.slot;
	RETURN NULL;
END $$;

CREATE FUNCTION offline_usage_truncate() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
	UPDATE offline_usage SET messages = 0, bytes = 0;
	RETURN NULL;
END $$;

-- The triggers come before the first count: CREATE TRIGGER locks out
-- writers (older nodes still storing during a rolling upgrade) until this
-- transaction commits, so the count below sees every message, and every
-- later one is counted by a trigger.
CREATE TRIGGER offline_usage_insert AFTER INSERT ON offline_messages
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION offline_usage_insert();
CREATE TRIGGER offline_usage_delete AFTER DELETE ON offline_messages
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION offline_usage_delete();
CREATE TRIGGER offline_usage_update AFTER UPDATE ON offline_messages
	REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION offline_usage_update();
CREATE TRIGGER offline_usage_truncate AFTER TRUNCATE ON offline_messages
	FOR EACH STATEMENT EXECUTE FUNCTION offline_usage_truncate();

UPDATE offline_usage u SET messages = t.n, bytes = t.b
FROM (SELECT hashtext(owner) & 63 AS slot, count(*) AS n, sum(octet_length(data)) AS b
      FROM offline_messages GROUP BY 1) t
WHERE u.slot = t.slot;
