package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// CreatePEPNode implements storage.PEP. The transaction takes the write
// lock at BEGIN (see Open), so the count after the insert is exact: the
// limit holds under concurrent creates.
func (s *Store) CreatePEPNode(ctx context.Context, owner string, n storage.PEPNode, maxNodes int) error {
	config, affs, err := n.ColumnsJSON()
	if err != nil {
		return fmt.Errorf("sqlite: create pep node %s of %s: %w", n.Name, owner, err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: create pep node %s of %s: %w", n.Name, owner, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `
		INSERT INTO pep_nodes (owner, node, config, affiliations) VALUES (?, ?, ?, ?)
		ON CONFLICT (owner, node) DO NOTHING`, owner, n.Name, config, affs)
	if err != nil {
		return fmt.Errorf("sqlite: create pep node %s of %s: %w", n.Name, owner, err)
	}
	if added, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: create pep node %s of %s: %w", n.Name, owner, err)
	} else if added == 0 {
		return fmt.Errorf("sqlite: create pep node %s of %s: %w", n.Name, owner, storage.ErrExists)
	}
	if maxNodes > 0 {
		var count int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pep_nodes WHERE owner = ?`, owner).Scan(&count); err != nil {
			return fmt.Errorf("sqlite: create pep node %s of %s: %w", n.Name, owner, err)
		}
		if count > maxNodes {
			return fmt.Errorf("sqlite: create pep node %s of %s: %d nodes: %w", n.Name, owner, count-1, storage.ErrLimit)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create pep node %s of %s: %w", n.Name, owner, err)
	}
	return nil
}

// UpdatePEPNode implements storage.PEP.
func (s *Store) UpdatePEPNode(ctx context.Context, owner string, n storage.PEPNode) error {
	config, affs, err := n.ColumnsJSON()
	if err != nil {
		return fmt.Errorf("sqlite: update pep node %s of %s: %w", n.Name, owner, err)
	}
	res, err := s.exec(ctx, `
		UPDATE pep_nodes SET config = ?, affiliations = ? WHERE owner = ? AND node = ?`,
		config, affs, owner, n.Name)
	return oneRow(res, err, "update pep node", n.Name+" of "+owner)
}

// PEPNodes implements storage.PEP; the order is byte order (BINARY
// collation).
func (s *Store) PEPNodes(ctx context.Context, owner string) ([]storage.PEPNode, error) {
	rows, err := s.query(ctx,
		`SELECT node, config, affiliations FROM pep_nodes WHERE owner = ? ORDER BY node`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: pep nodes of %s: %w", owner, err)
	}
	defer rows.Close()
	nodes := []storage.PEPNode{}
	for rows.Next() {
		var n storage.PEPNode
		var config, affs string
		if err := rows.Scan(&n.Name, &config, &affs); err != nil {
			return nil, fmt.Errorf("sqlite: pep nodes of %s: %w", owner, err)
		}
		if n, err = storage.PEPNodeFromJSON(n.Name, []byte(config), []byte(affs)); err != nil {
			return nil, fmt.Errorf("sqlite: pep node %s of %s: %w", n.Name, owner, err)
		}
		nodes = append(nodes, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: pep nodes of %s: %w", owner, err)
	}
	return nodes, nil
}

// DeletePEPNode implements storage.PEP; the node's items go with it (ON
// DELETE CASCADE).
func (s *Store) DeletePEPNode(ctx context.Context, owner, node string) error {
	res, err := s.exec(ctx, `DELETE FROM pep_nodes WHERE owner = ? AND node = ?`, owner, node)
	return oneRow(res, err, "delete pep node", node+" of "+owner)
}

// PublishPEPItem implements storage.PEP. The transaction takes the write
// lock at BEGIN (see Open), so the new row's seq (AUTOINCREMENT) is above
// every other item's and the prune counts the rows it leaves exactly.
func (s *Store) PublishPEPItem(ctx context.Context, owner, node string, it storage.PEPItem, maxItems int) (storage.PEPItem, error) {
	if it.Payload == nil {
		it.Payload = []byte{} // NOT NULL; nil would be bound as NULL
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return storage.PEPItem{}, fmt.Errorf("sqlite: publish pep item %s to %s of %s: %w", it.ID, node, owner, err)
	}
	defer tx.Rollback()
	var exists bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM pep_nodes WHERE owner = ? AND node = ?)`, owner, node).Scan(&exists); err != nil {
		return storage.PEPItem{}, fmt.Errorf("sqlite: publish pep item %s to %s of %s: %w", it.ID, node, owner, err)
	}
	if !exists {
		return storage.PEPItem{}, fmt.Errorf("sqlite: publish pep item %s to %s of %s: %w", it.ID, node, owner, storage.ErrNotFound)
	}
	// Taken under the write lock, so that Published follows seq (which the
	// order is by, whatever the clock does).
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	it.Published = now().Truncate(time.Microsecond).UTC()
	// Deleted and inserted rather than updated, so that the item gets a new
	// seq: it is the newest now.
	if _, err := tx.ExecContext(ctx,
		`DELETE FROM pep_items WHERE owner = ? AND node = ? AND id = ?`, owner, node, it.ID); err != nil {
		return storage.PEPItem{}, fmt.Errorf("sqlite: publish pep item %s to %s of %s: %w", it.ID, node, owner, err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO pep_items (owner, node, id, publisher, payload, published) VALUES (?, ?, ?, ?, ?, ?)`,
		owner, node, it.ID, it.Publisher, it.Payload, it.Published.UnixMicro()); err != nil {
		return storage.PEPItem{}, fmt.Errorf("sqlite: publish pep item %s to %s of %s: %w", it.ID, node, owner, err)
	}
	if maxItems > 0 {
		// The subquery is the seq of the newest item beyond the first
		// maxItems, NULL (nothing to remove) when there are no more.
		if _, err := tx.ExecContext(ctx, `
			DELETE FROM pep_items WHERE owner = ?1 AND node = ?2 AND seq <= (
				SELECT seq FROM pep_items WHERE owner = ?1 AND node = ?2
				ORDER BY seq DESC LIMIT 1 OFFSET ?3)`, owner, node, maxItems); err != nil {
			return storage.PEPItem{}, fmt.Errorf("sqlite: publish pep item %s to %s of %s: %w", it.ID, node, owner, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return storage.PEPItem{}, fmt.Errorf("sqlite: publish pep item %s to %s of %s: %w", it.ID, node, owner, err)
	}
	return it, nil
}

// PEPItems implements storage.PEP in one statement, which reads one
// snapshot: the node's row left-joined to its items gives no row when there
// is no node, and one row of NULLs when it has no items (or none of ids).
func (s *Store) PEPItems(ctx context.Context, owner, node string, ids []string, max int) ([]storage.PEPItem, error) {
	var rows *sql.Rows
	var err error
	if len(ids) > 0 {
		var list []byte
		if list, err = json.Marshal(ids); err != nil {
			return nil, fmt.Errorf("sqlite: pep items of %s of %s: %w", node, owner, err)
		}
		rows, err = s.query(ctx, `
			SELECT i.id, i.publisher, i.payload, i.published
			FROM pep_nodes n LEFT JOIN pep_items i ON i.owner = n.owner AND i.node = n.node
				AND i.id IN (SELECT value FROM json_each(?3))
			WHERE n.owner = ?1 AND n.node = ?2
			ORDER BY i.seq DESC`, owner, node, string(list))
	} else {
		if max <= 0 {
			max = -1 // no limit
		}
		rows, err = s.query(ctx, `
			SELECT i.id, i.publisher, i.payload, i.published
			FROM pep_nodes n LEFT JOIN pep_items i ON i.owner = n.owner AND i.node = n.node
			WHERE n.owner = ?1 AND n.node = ?2
			ORDER BY i.seq DESC LIMIT ?3`, owner, node, max)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: pep items of %s of %s: %w", node, owner, err)
	}
	defer rows.Close()
	var items []storage.PEPItem
	for rows.Next() {
		var id, publisher sql.NullString
		var payload []byte
		var published sql.NullInt64
		if err := rows.Scan(&id, &publisher, &payload, &published); err != nil {
			return nil, fmt.Errorf("sqlite: pep items of %s of %s: %w", node, owner, err)
		}
		if items == nil {
			items = []storage.PEPItem{}
		}
		if !id.Valid {
			continue // the node, without items
		}
		items = append(items, pepItem(id.String, publisher.String, payload, published.Int64))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: pep items of %s of %s: %w", node, owner, err)
	}
	if items == nil {
		return nil, fmt.Errorf("sqlite: pep items of %s of %s: %w", node, owner, storage.ErrNotFound)
	}
	return items, nil
}

// LastPEPItems implements storage.PEP in one statement: with max(seq) in
// an aggregate query, SQLite takes the bare columns from the row that has
// the maximum (https://sqlite.org/lang_select.html#bareagg).
func (s *Store) LastPEPItems(ctx context.Context, owner string) (map[string]storage.PEPItem, error) {
	rows, err := s.query(ctx, `
		SELECT node, id, publisher, payload, published, max(seq)
		FROM pep_items WHERE owner = ? GROUP BY node`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: last pep items of %s: %w", owner, err)
	}
	defer rows.Close()
	last := map[string]storage.PEPItem{}
	for rows.Next() {
		var node, id, publisher string
		var payload []byte
		var published, seq int64
		if err := rows.Scan(&node, &id, &publisher, &payload, &published, &seq); err != nil {
			return nil, fmt.Errorf("sqlite: last pep items of %s: %w", owner, err)
		}
		last[node] = pepItem(id, publisher, payload, published)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: last pep items of %s: %w", owner, err)
	}
	return last, nil
}

// RetractPEPItem implements storage.PEP. A missing node has no items, so
// that one DELETE tells both kinds of ErrNotFound.
func (s *Store) RetractPEPItem(ctx context.Context, owner, node, id string) error {
	res, err := s.exec(ctx,
		`DELETE FROM pep_items WHERE owner = ? AND node = ? AND id = ?`, owner, node, id)
	return oneRow(res, err, "retract pep item", id+" from "+node+" of "+owner)
}

// PurgePEPNode implements storage.PEP.
func (s *Store) PurgePEPNode(ctx context.Context, owner, node string) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: purge pep node %s of %s: %w", node, owner, err)
	}
	defer tx.Rollback()
	var exists bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM pep_nodes WHERE owner = ? AND node = ?)`, owner, node).Scan(&exists); err != nil {
		return fmt.Errorf("sqlite: purge pep node %s of %s: %w", node, owner, err)
	}
	if !exists {
		return fmt.Errorf("sqlite: purge pep node %s of %s: %w", node, owner, storage.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM pep_items WHERE owner = ? AND node = ?`, owner, node); err != nil {
		return fmt.Errorf("sqlite: purge pep node %s of %s: %w", node, owner, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: purge pep node %s of %s: %w", node, owner, err)
	}
	return nil
}

func pepItem(id, publisher string, payload []byte, published int64) storage.PEPItem {
	if payload == nil {
		payload = []byte{}
	}
	return storage.PEPItem{ID: id, Publisher: publisher, Payload: payload, Published: time.UnixMicro(published).UTC()}
}
