package sqlite

import (
	"context"
	"fmt"

	"github.com/xmppd/xmppd/storage"
)

// StoreOffline implements storage.Offline. The transaction takes the write
// lock at BEGIN (see Open), so no other writer, in this process or another,
// can add to any queue between the counts and the insert: both limits are
// exact. synchronous=FULL makes the commit durable.
func (s *Store) StoreOffline(ctx context.Context, owner string, data []byte, lim storage.OfflineLimits) error {
	if data == nil {
		data = []byte{} // NOT NULL
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: store offline for %s: %w", owner, err)
	}
	defer tx.Rollback()
	if lim.PerAccount > 0 || lim.TotalBytes > 0 {
		// offline_usage is kept by triggers (migration 0006).
		var n int
		var used int64
		if err := tx.QueryRowContext(ctx, `SELECT
			(SELECT count(*) FROM offline_messages WHERE owner = ?),
			(SELECT bytes FROM offline_usage)`, owner).Scan(&n, &used); err != nil {
			return fmt.Errorf("sqlite: store offline for %s: %w", owner, err)
		}
		if lim.PerAccount > 0 && n >= lim.PerAccount {
			return fmt.Errorf("sqlite: store offline for %s: %d messages: %w", owner, n, storage.ErrLimit)
		}
		if lim.TotalBytes > 0 && used+int64(len(data)) > lim.TotalBytes {
			return fmt.Errorf("sqlite: store offline for %s: %d bytes stored: %w", owner, used, storage.ErrTotalLimit)
		}
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO offline_messages (owner, data) VALUES (?, ?)`, owner, data); err != nil {
		return fmt.Errorf("sqlite: store offline for %s: %w", owner, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: store offline for %s: %w", owner, err)
	}
	return nil
}

// OfflineMessages implements storage.Offline.
func (s *Store) OfflineMessages(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	rows, err := s.query(ctx,
		`SELECT id, data FROM offline_messages WHERE owner = ? ORDER BY id`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: offline messages of %s: %w", owner, err)
	}
	defer rows.Close()
	msgs := []storage.OfflineMessage{}
	for rows.Next() {
		var m storage.OfflineMessage
		if err := rows.Scan(&m.ID, &m.Data); err != nil {
			return nil, fmt.Errorf("sqlite: offline messages of %s: %w", owner, err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: offline messages of %s: %w", owner, err)
	}
	return msgs, nil
}

// DeleteOffline implements storage.Offline.
func (s *Store) DeleteOffline(ctx context.Context, owner string, upTo int64) error {
	if _, err := s.exec(ctx,
		`DELETE FROM offline_messages WHERE owner = ? AND id <= ?`, owner, upTo); err != nil {
		return fmt.Errorf("sqlite: delete offline of %s: %w", owner, err)
	}
	return nil
}

// OfflineUsage implements storage.Offline.
func (s *Store) OfflineUsage(ctx context.Context) (storage.OfflineUsage, error) {
	var u storage.OfflineUsage
	if err := s.queryRow(ctx, `SELECT messages, bytes FROM offline_usage`).Scan(&u.Messages, &u.Bytes); err != nil {
		return storage.OfflineUsage{}, fmt.Errorf("sqlite: offline usage: %w", err)
	}
	return u, nil
}
