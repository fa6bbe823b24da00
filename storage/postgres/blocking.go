package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
)

// blockLock is the advisory lock kind that serialises Block per account.
const blockLock int32 = 0x626c6f63 // "bloc"

// BlockList implements storage.Blocking; the order is byte order (the
// columns are COLLATE "C").
func (s *Store) BlockList(ctx context.Context, owner string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT jid FROM block_items WHERE owner = $1 ORDER BY jid`, owner)
	jids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: block list of %s: %w", owner, err)
	}
	if jids == nil {
		jids = []string{}
	}
	return jids, nil
}

// Block implements storage.Blocking. With a limit, the account's advisory
// lock keeps two transactions from both adding to a list one short of it.
func (s *Store) Block(ctx context.Context, owner string, jids []string, max int) (int, error) {
	added := 0
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if max > 0 {
			if err := lockOwner(ctx, tx, blockLock, owner); err != nil {
				return err
			}
		}
		tag, err := tx.Exec(ctx, `
			INSERT INTO block_items (owner, jid) SELECT $1, unnest($2::text[])
			ON CONFLICT (owner, jid) DO NOTHING`, owner, jids)
		if err != nil {
			return err
		}
		added = int(tag.RowsAffected())
		if max > 0 && added > 0 {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM block_items WHERE owner = $1`, owner).Scan(&n); err != nil {
				return err
			}
			if n > max {
				return fmt.Errorf("%d items: %w", n, storage.ErrLimit)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: block for %s: %w", owner, err)
	}
	return added, nil
}

// Unblock implements storage.Blocking.
func (s *Store) Unblock(ctx context.Context, owner string, jids []string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM block_items WHERE owner = $1 AND jid = ANY($2::text[])`, owner, jids)
	if err != nil {
		return 0, fmt.Errorf("postgres: unblock for %s: %w", owner, err)
	}
	return int(tag.RowsAffected()), nil
}

// UnblockAll implements storage.Blocking.
func (s *Store) UnblockAll(ctx context.Context, owner string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM block_items WHERE owner = $1`, owner)
	if err != nil {
		return 0, fmt.Errorf("postgres: unblock all for %s: %w", owner, err)
	}
	return int(tag.RowsAffected()), nil
}
