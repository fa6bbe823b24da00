package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
)

// StoreOffline implements storage.Offline. It always takes the owner's
// advisory lock (see lockOwner), not only for the quota: identity values are
// drawn when a row is inserted, not when it commits, so without the lock a
// message could commit with a lower ID than one already read, and
// DeleteOffline(upTo) would delete it unread. synchronous_commit is set on
// for the transaction, whatever the server's default, so that the commit
// is flushed before StoreOffline returns.
func (s *Store) StoreOffline(ctx context.Context, owner string, data []byte, max int) error {
	if data == nil {
		data = []byte{} // NOT NULL; nil would be sent as NULL
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = on`); err != nil {
			return err
		}
		if err := lockOwner(ctx, tx, offlineLock, owner); err != nil {
			return err
		}
		if max > 0 {
			var n int
			if err := tx.QueryRow(ctx,
				`SELECT count(*) FROM offline_messages WHERE owner = $1`, owner).Scan(&n); err != nil {
				return err
			}
			if n >= max {
				return fmt.Errorf("%d messages: %w", n, storage.ErrLimit)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO offline_messages (owner, data) VALUES ($1, $2)`, owner, data)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: store offline for %s: %w", owner, err)
	}
	return nil
}

// OfflineMessages implements storage.Offline.
func (s *Store) OfflineMessages(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT id, data FROM offline_messages WHERE owner = $1 ORDER BY id`, owner)
	msgs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.OfflineMessage, error) {
		var m storage.OfflineMessage
		err := row.Scan(&m.ID, &m.Data)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: offline messages of %s: %w", owner, err)
	}
	if msgs == nil {
		msgs = []storage.OfflineMessage{}
	}
	return msgs, nil
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, owner string, upTo int64) error {
	if _, err := s.pool.Exec(ctx,
		`DELETE FROM offline_messages WHERE owner = $1 AND id <= $2`, owner, upTo); err != nil {
		return fmt.Errorf("postgres: delete offline of %s: %w", owner, err)
	}
	return nil
}
