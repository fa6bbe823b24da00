-- What all offline queues hold together, for the server-wide cap on offline
-- storage (storage.OfflineLimits.TotalBytes). Counting the rows at each store
-- would read the whole table; triggers keep this one row current instead, so
-- that every way a message comes or goes counts: StoreOffline, DeleteOffline,
-- DeleteUser, or an operator's SQL. length() of a BLOB is its size in bytes.
CREATE TABLE offline_usage (
	id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
	messages INTEGER NOT NULL,
	bytes    INTEGER NOT NULL
) STRICT;

INSERT INTO offline_usage (id, messages, bytes)
	SELECT 1, count(*), coalesce(sum(length(data)), 0) FROM offline_messages;

CREATE TRIGGER offline_usage_insert AFTER INSERT ON offline_messages BEGIN
	UPDATE offline_usage SET messages = messages + 1, bytes = bytes + length(NEW.data);
END;

CREATE TRIGGER offline_usage_delete AFTER DELETE ON offline_messages BEGIN
	UPDATE offline_usage SET messages = messages - 1, bytes = bytes - length(OLD.data);
END;

CREATE TRIGGER offline_usage_update AFTER UPDATE OF data ON offline_messages BEGIN
	UPDATE offline_usage SET bytes = bytes - length(OLD.data) + length(NEW.data);
END;
