-- Personal eventing services (storage.PEP, XEP-0163): each account's nodes
-- and the items published to them.
--
-- config is the node's configuration as a JSON object of field var → array
-- of values; affiliations a JSON object of bare JID → affiliation. Both are
-- '{}' for a node with the service's defaults and no affiliations.
CREATE TABLE pep_nodes (
	owner        TEXT NOT NULL,
	node         TEXT NOT NULL CHECK (node <> ''),
	config       TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
	affiliations TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(affiliations)),
	created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
	PRIMARY KEY (owner, node)
) STRICT;

-- The order of a node's items is seq: the rowid, AUTOINCREMENT so that a
-- new row's seq is above every seq the table ever had. Republishing an id
-- deletes its row and inserts a new one, which is then the newest. published
-- (Unix microseconds, UTC) is only reported: many items can share one.
--
-- Indexes:
--   UNIQUE (owner, node, id)   an id is unique within its node; replacing or
--                              retracting an item is one probe.
--   (owner, node, seq)         a node's newest items, a backward scan of its
--                              range; pruning past maxItems; LastPEPItems.
-- Items die with their node (ON DELETE CASCADE; Open turns foreign keys on).
CREATE TABLE pep_items (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	owner     TEXT    NOT NULL,
	node      TEXT    NOT NULL,
	id        TEXT    NOT NULL CHECK (id <> ''),
	-- The full JID that published the item.
	publisher TEXT    NOT NULL,
	-- The <item/> element's children, serialised; may be empty.
	payload   BLOB    NOT NULL,
	published INTEGER NOT NULL,
	UNIQUE (owner, node, id),
	FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node) ON DELETE CASCADE
) STRICT;

CREATE INDEX pep_items_order ON pep_items (owner, node, seq);
