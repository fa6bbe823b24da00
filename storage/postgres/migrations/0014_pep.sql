-- Personal eventing services (storage.PEP, XEP-0163): each account's nodes
-- and the items published to them. Names and ids are COLLATE "C": PEPNodes
-- sorts by byte order, and equality never depends on the database's locale.
--
-- config is the node's configuration as a JSON object of field var → array
-- of values; affiliations a JSON object of bare JID → affiliation. Both are
-- '{}' for a node with the service's defaults and no affiliations.
CREATE TABLE pep_nodes (
	owner        text COLLATE "C" NOT NULL,
	node         text COLLATE "C" NOT NULL CHECK (node <> ''),
	config       jsonb       NOT NULL DEFAULT '{}',
	affiliations jsonb       NOT NULL DEFAULT '{}',
	created_at   timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (owner, node)
);

-- The order of a node's items is seq, drawn from one sequence for the whole
-- table; republishing an id draws a new one, so that the item is then the
-- newest. PublishPEPItem draws it while it holds its node's row lock, so
-- that within a node seq follows the order of the commits. published is
-- only reported: many items can share one microsecond.
--
-- Indexes:
--   PRIMARY KEY (owner, node, id)  an id is unique within its node;
--                                  replacing or retracting an item is one
--                                  probe.
--   (owner, node, seq DESC)        a node's newest items, a scan of its
--                                  range from the start; pruning past
--                                  maxItems; LastPEPItems, whose DISTINCT ON
--                                  (node) ORDER BY node, seq DESC is this
--                                  index's order.
-- Items die with their node (ON DELETE CASCADE).
CREATE TABLE pep_items (
	owner     text COLLATE "C" NOT NULL,
	node      text COLLATE "C" NOT NULL,
	id        text COLLATE "C" NOT NULL CHECK (id <> ''),
	-- The full JID that published the item.
	publisher text        NOT NULL,
	-- The <item/> element's children, serialised; may be empty.
	payload   bytea       NOT NULL,
	published timestamptz NOT NULL,
	seq       bigint      NOT NULL GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (owner, node, id),
	FOREIGN KEY (owner, node) REFERENCES pep_nodes (owner, node) ON DELETE CASCADE
);

CREATE INDEX pep_items_order ON pep_items (owner, node, seq DESC);
