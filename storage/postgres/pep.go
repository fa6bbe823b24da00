package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xmppd/xmppd/storage"
)

// pepLock is the advisory lock kind that serialises CreatePEPNode per
// account when it counts nodes.
const pepLock int32 = 0x70657020 // "pep "

// CreatePEPNode implements storage.PEP. With a limit, the account's
// advisory lock keeps two transactions from both adding a node to an
// account one short of it.
func (s *Store) CreatePEPNode(ctx context.Context, owner string, n storage.PEPNode, maxNodes int) error {
	config, affs, err := n.ColumnsJSON()
	if err != nil {
		return fmt.Errorf("postgres: create pep node %s of %s: %w", n.Name, owner, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if maxNodes > 0 {
			if err := lockOwner(ctx, tx, pepLock, owner); err != nil {
				return err
			}
		}
		// A concurrent insert of the same node makes this one wait for it
		// and then do nothing: ErrExists, not a unique violation.
		tag, err := tx.Exec(ctx, `
			INSERT INTO pep_nodes (owner, node, config, affiliations) VALUES ($1, $2, $3, $4)
			ON CONFLICT (owner, node) DO NOTHING`, owner, n.Name, config, affs)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrExists
		}
		if maxNodes > 0 {
			var count int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM pep_nodes WHERE owner = $1`, owner).Scan(&count); err != nil {
				return err
			}
			if count > maxNodes {
				return fmt.Errorf("%d nodes: %w", count-1, storage.ErrLimit)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: create pep node %s of %s: %w", n.Name, owner, err)
	}
	return nil
}

// UpdatePEPNode implements storage.PEP.
func (s *Store) UpdatePEPNode(ctx context.Context, owner string, n storage.PEPNode) error {
	config, affs, err := n.ColumnsJSON()
	if err != nil {
		return fmt.Errorf("postgres: update pep node %s of %s: %w", n.Name, owner, err)
	}
	tag, err := s.pool.Exec(ctx, `
		UPDATE pep_nodes SET config = $3, affiliations = $4 WHERE owner = $1 AND node = $2`,
		owner, n.Name, config, affs)
	return oneRow(tag, err, "update pep node", n.Name+" of "+owner)
}

// PEPNodes implements storage.PEP; the order is byte order (the node
// column is COLLATE "C").
func (s *Store) PEPNodes(ctx context.Context, owner string) ([]storage.PEPNode, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT node, config::text, affiliations::text FROM pep_nodes WHERE owner = $1 ORDER BY node`, owner)
	nodes := []storage.PEPNode{}
	var name, config, affs string
	_, err := pgx.ForEachRow(rows, []any{&name, &config, &affs}, func() error {
		n, err := storage.PEPNodeFromJSON(name, []byte(config), []byte(affs))
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		nodes = append(nodes, n)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: pep nodes of %s: %w", owner, err)
	}
	return nodes, nil
}

// DeletePEPNode implements storage.PEP; the node's items go with it (ON
// DELETE CASCADE).
func (s *Store) DeletePEPNode(ctx context.Context, owner, node string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pep_nodes WHERE owner = $1 AND node = $2`, owner, node)
	return oneRow(tag, err, "delete pep node", node+" of "+owner)
}

// PublishPEPItem implements storage.PEP in one round trip within its
// transaction. It first locks the node's row, FOR NO KEY UPDATE, which
// conflicts with itself but not with the KEY SHARE lock of the items'
// foreign key: publishers to one node take turns, so that seq, drawn after
// the lock, follows the order of the commits, and the prune sees every
// item that is there (two at once could otherwise each keep maxItems of
// what it sees and leave more between them).
func (s *Store) PublishPEPItem(ctx context.Context, owner, node string, it storage.PEPItem, maxItems int) (storage.PEPItem, error) {
	if it.Payload == nil {
		it.Payload = []byte{} // NOT NULL; nil would be sent as NULL
	}
	var at *time.Time // NULL: the database's clock, after the lock
	if s.now != nil {
		t := s.now()
		at = &t
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT FROM pep_nodes WHERE owner = $1 AND node = $2 FOR NO KEY UPDATE`, owner, node).
			QueryRow(func(r pgx.Row) error { return r.Scan() })
		// A republished id draws a new seq (DEFAULT): it is the newest now.
		b.Queue(`
			INSERT INTO pep_items (owner, node, id, publisher, payload, published)
			VALUES ($1, $2, $3, $4, $5, coalesce($6, clock_timestamp()))
			ON CONFLICT (owner, node, id) DO UPDATE SET publisher = excluded.publisher,
				payload = excluded.payload, published = excluded.published, seq = DEFAULT
			RETURNING published`, owner, node, it.ID, it.Publisher, it.Payload, at).
			QueryRow(func(r pgx.Row) error { return r.Scan(&it.Published) })
		if maxItems > 0 {
			// The subquery is the seq of the newest item beyond the first
			// maxItems, NULL (nothing to remove) when there are no more.
			b.Queue(`
				DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND seq <= (
					SELECT seq FROM pep_items WHERE owner = $1 AND node = $2
					ORDER BY seq DESC OFFSET $3 LIMIT 1)`, owner, node, maxItems)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); errors.Is(err, pgx.ErrNoRows) || ok && pgErr.Code == foreignKeyViolation {
		err = storage.ErrNotFound
	}
	if err != nil {
		return storage.PEPItem{}, fmt.Errorf("postgres: publish pep item %s to %s of %s: %w", it.ID, node, owner, err)
	}
	it.Published = it.Published.UTC()
	return it, nil
}

// PEPItems implements storage.PEP in one statement, which reads one
// snapshot: the node's row joined to its items (a lateral subquery, which
// reads the newest max from the (owner, node, seq DESC) index) gives no row when
// there is no node, and one row of NULLs when it has no items (or none of
// ids).
func (s *Store) PEPItems(ctx context.Context, owner, node string, ids []string, max int) ([]storage.PEPItem, error) {
	var rows pgx.Rows
	if len(ids) > 0 {
		rows, _ = s.pool.Query(ctx, `
			SELECT i.id, i.publisher, i.payload, i.published
			FROM pep_nodes n LEFT JOIN pep_items i
				ON i.owner = n.owner AND i.node = n.node AND i.id = ANY ($3)
			WHERE n.owner = $1 AND n.node = $2
			ORDER BY i.seq DESC`, owner, node, ids)
	} else {
		var limit *int // NULL: LIMIT ALL
		if max > 0 {
			limit = &max
		}
		rows, _ = s.pool.Query(ctx, `
			SELECT i.id, i.publisher, i.payload, i.published
			FROM pep_nodes n LEFT JOIN LATERAL (
				SELECT id, publisher, payload, published, seq FROM pep_items
				WHERE owner = n.owner AND node = n.node
				ORDER BY seq DESC LIMIT $3) i ON true
			WHERE n.owner = $1 AND n.node = $2
			ORDER BY i.seq DESC`, owner, node, limit)
	}
	var items []storage.PEPItem
	var id, publisher *string
	var payload []byte
	var published *time.Time
	_, err := pgx.ForEachRow(rows, []any{&id, &publisher, &payload, &published}, func() error {
		if items == nil {
			items = []storage.PEPItem{}
		}
		if id != nil { // else the node, without items
			items = append(items, pepItem(*id, *publisher, payload, *published))
		}
		return nil
	})
	if err == nil && items == nil {
		err = storage.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: pep items of %s of %s: %w", node, owner, err)
	}
	return items, nil
}

// LastPEPItems implements storage.PEP in one statement: DISTINCT ON keeps
// each node's first row, which the order makes its newest.
func (s *Store) LastPEPItems(ctx context.Context, owner string) (map[string]storage.PEPItem, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT DISTINCT ON (node) node, id, publisher, payload, published
		FROM pep_items WHERE owner = $1 ORDER BY node, seq DESC`, owner)
	last := map[string]storage.PEPItem{}
	var node, id, publisher string
	var payload []byte
	var published time.Time
	_, err := pgx.ForEachRow(rows, []any{&node, &id, &publisher, &payload, &published}, func() error {
		last[node] = pepItem(id, publisher, payload, published)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: last pep items of %s: %w", owner, err)
	}
	return last, nil
}

// RetractPEPItem implements storage.PEP. A missing node has no items, so
// that one DELETE tells both kinds of ErrNotFound.
func (s *Store) RetractPEPItem(ctx context.Context, owner, node, id string) error {
	tag, err := s.pool.Exec(ctx,
		`DELETE FROM pep_items WHERE owner = $1 AND node = $2 AND id = $3`, owner, node, id)
	return oneRow(tag, err, "retract pep item", id+" from "+node+" of "+owner)
}

// PurgePEPNode implements storage.PEP. It locks the node's row as
// PublishPEPItem does, so that a publish is wholly before or after it.
func (s *Store) PurgePEPNode(ctx context.Context, owner, node string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT FROM pep_nodes WHERE owner = $1 AND node = $2 FOR NO KEY UPDATE`, owner, node).
			QueryRow(func(r pgx.Row) error { return r.Scan() })
		b.Queue(`DELETE FROM pep_items WHERE owner = $1 AND node = $2`, owner, node)
		return tx.SendBatch(ctx, b).Close()
	})
	if errors.Is(err, pgx.ErrNoRows) {
		err = storage.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("postgres: purge pep node %s of %s: %w", node, owner, err)
	}
	return nil
}

func pepItem(id, publisher string, payload []byte, published time.Time) storage.PEPItem {
	if payload == nil {
		payload = []byte{}
	}
	return storage.PEPItem{ID: id, Publisher: publisher, Payload: payload, Published: published.UTC()}
}
