package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
)

// offlineTotalLock is the first key of the advisory lock that guards the
// server-wide offline limit; the second is a hash of the schema, as for
// migrationLock.
const offlineTotalLock int32 = 0x6f66746f // "ofto"

// nearMargin is how close to the total limit a store must come to be
// serialised with every other store (see StoreOffline): an eighth of the
// limit, and at least 16 MiB, 64 stanzas of the default largest size.
func nearMargin(total int64) int64 {
	return max(total/8, 16<<20)
}

// errNear says that a store under the shared lock found the total near its
// limit, and must start again under the exclusive lock.
var errNear = errors.New("offline total near its limit")

// StoreOffline implements storage.Offline. It always takes the owner's
// advisory lock (see lockOwner), not only for the quota: identity values are
// drawn when a row is inserted, not when it commits, so without the lock a
// message could commit with a lower ID than one already read, and
// DeleteOffline(upTo) would delete it unread. synchronous_commit is set on
// for the transaction, whatever the server's default, so that the commit
// is flushed before StoreOffline returns.
//
// The total limit counts what every node stored, from offline_usage
// (migration 0006), without making all stores wait for one another while
// the total is far below the limit. Each store holds an advisory lock on the
// total until it commits: shared while the total, with this message, stays
// more than nearMargin below the limit; exclusive otherwise. A store under
// the exclusive lock waits until the stores in flight have committed and
// keeps new ones out, so it reads the exact total: near the limit, the
// limit is exact. Stores under the shared lock do not see one another's
// messages until they commit, so far from the limit the total can only
// pass it if the stores in flight at one moment carry more than nearMargin
// bytes together.
func (s *Store) StoreOffline(ctx context.Context, owner string, data []byte, lim storage.OfflineLimits) error {
	if data == nil {
		data = []byte{} // NOT NULL; nil would be sent as NULL
	}
	err := s.storeOffline(ctx, owner, data, lim, s.offlineNear.Load())
	if errors.Is(err, errNear) {
		err = s.storeOffline(ctx, owner, data, lim, true)
	}
	if err != nil {
		return fmt.Errorf("postgres: store offline for %s: %w", owner, err)
	}
	return nil
}

func (s *Store) storeOffline(ctx context.Context, owner string, data []byte, lim storage.OfflineLimits, exclusive bool) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One round trip for the settings, the locks and the counts.
		b := &pgx.Batch{}
		b.Queue(`SET LOCAL synchronous_commit = on`)
		b.Queue(lockOwnerSQL, offlineLock, owner)
		if lim.TotalBytes > 0 {
			if exclusive {
				b.Queue(`SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`, offlineTotalLock)
			} else {
				b.Queue(`SELECT pg_advisory_xact_lock_shared($1, hashtext(coalesce(current_schema(), '')))`, offlineTotalLock)
			}
		}
		var n int
		var used int64
		if lim.PerAccount > 0 {
			b.Queue(`SELECT count(*) FROM offline_messages WHERE owner = $1`, owner).QueryRow(func(r pgx.Row) error {
				return r.Scan(&n)
			})
		}
		if lim.TotalBytes > 0 {
			b.Queue(`SELECT coalesce(sum(bytes), 0)::bigint FROM offline_usage`).QueryRow(func(r pgx.Row) error {
				return r.Scan(&used)
			})
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		if lim.PerAccount > 0 && n >= lim.PerAccount {
			return fmt.Errorf("%d messages: %w", n, storage.ErrLimit)
		}
		if lim.TotalBytes > 0 {
			after := used + int64(len(data))
			near := after > lim.TotalBytes-nearMargin(lim.TotalBytes)
			s.offlineNear.Store(near)
			if near && !exclusive {
				return errNear
			}
			if after > lim.TotalBytes {
				return fmt.Errorf("%d bytes stored: %w", used, storage.ErrTotalLimit)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO offline_messages (owner, data) VALUES ($1, $2)`, owner, data)
		return err
	})
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

// OfflineUsage implements storage.Offline.
func (s *Store) OfflineUsage(ctx context.Context) (storage.OfflineUsage, error) {
	var u storage.OfflineUsage
	err := s.pool.QueryRow(ctx,
		`SELECT coalesce(sum(messages), 0)::bigint, coalesce(sum(bytes), 0)::bigint FROM offline_usage`).
		Scan(&u.Messages, &u.Bytes)
	if err != nil {
		return storage.OfflineUsage{}, fmt.Errorf("postgres: offline usage: %w", err)
	}
	return u, nil
}
