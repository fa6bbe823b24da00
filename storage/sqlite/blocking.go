package sqlite

import (
	"context"
	"fmt"

	"github.com/xmppd/xmppd/storage"
)

// BlockList implements storage.Blocking; the order is byte order (BINARY
// collation).
func (s *Store) BlockList(ctx context.Context, owner string) ([]string, error) {
	rows, err := s.query(ctx, `SELECT jid FROM block_items WHERE owner = ? ORDER BY jid`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: block list of %s: %w", owner, err)
	}
	defer rows.Close()
	jids := []string{}
	for rows.Next() {
		var j string
		if err := rows.Scan(&j); err != nil {
			return nil, fmt.Errorf("sqlite: block list of %s: %w", owner, err)
		}
		jids = append(jids, j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: block list of %s: %w", owner, err)
	}
	return jids, nil
}

// Block implements storage.Blocking. The transaction takes the write lock
// at BEGIN (see Open), so the count after the inserts is exact: the limit
// holds under concurrent blocks.
func (s *Store) Block(ctx context.Context, owner string, jids []string, max int) (int, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite: block for %s: %w", owner, err)
	}
	defer tx.Rollback()
	added := 0
	for _, j := range jids {
		res, err := tx.ExecContext(ctx,
			`INSERT INTO block_items (owner, jid) VALUES (?, ?) ON CONFLICT (owner, jid) DO NOTHING`, owner, j)
		if err != nil {
			return 0, fmt.Errorf("sqlite: block %s for %s: %w", j, owner, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("sqlite: block %s for %s: %w", j, owner, err)
		}
		added += int(n)
	}
	if max > 0 && added > 0 {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM block_items WHERE owner = ?`, owner).Scan(&n); err != nil {
			return 0, fmt.Errorf("sqlite: block for %s: %w", owner, err)
		}
		if n > max {
			return 0, fmt.Errorf("sqlite: block for %s: %d items: %w", owner, n, storage.ErrLimit)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: block for %s: %w", owner, err)
	}
	return added, nil
}

// Unblock implements storage.Blocking.
func (s *Store) Unblock(ctx context.Context, owner string, jids []string) (int, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("sqlite: unblock for %s: %w", owner, err)
	}
	defer tx.Rollback()
	removed := 0
	for _, j := range jids {
		res, err := tx.ExecContext(ctx, `DELETE FROM block_items WHERE owner = ? AND jid = ?`, owner, j)
		if err != nil {
			return 0, fmt.Errorf("sqlite: unblock %s for %s: %w", j, owner, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("sqlite: unblock %s for %s: %w", j, owner, err)
		}
		removed += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("sqlite: unblock for %s: %w", owner, err)
	}
	return removed, nil
}

// UnblockAll implements storage.Blocking.
func (s *Store) UnblockAll(ctx context.Context, owner string) (int, error) {
	res, err := s.exec(ctx, `DELETE FROM block_items WHERE owner = ?`, owner)
	if err != nil {
		return 0, fmt.Errorf("sqlite: unblock all for %s: %w", owner, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: unblock all for %s: %w", owner, err)
	}
	return int(n), nil
}
