package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
)

// Keys of the transaction-scoped advisory locks that serialise the writers of
// one account's roster or offline queue; the second key is a hash of the
// schema and the account.
const (
	rosterLock  int32 = 0x726f7374 // "rost"
	offlineLock int32 = 0x6f66666c // "offl"
)

// lockOwner takes the advisory lock kind for owner until tx ends. Under READ
// COMMITTED two transactions could otherwise both count max-1 rows and both
// insert.
func lockOwner(ctx context.Context, tx pgx.Tx, kind int32, owner string) error {
	_, err := tx.Exec(ctx, lockOwnerSQL, kind, owner)
	return err
}

// lockOwnerSQL is what lockOwner runs, for callers that batch it.
const lockOwnerSQL = `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '') || ' ' || $2::text))`

// Roster implements storage.Rosters.
func (s *Store) Roster(ctx context.Context, owner string) ([]storage.RosterItem, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT contact, name, subscription, ask, pending_in, approved, groups
		FROM roster_items WHERE owner = $1 ORDER BY contact`, owner)
	items, err := pgx.CollectRows(rows, scanRosterItem)
	if err != nil {
		return nil, fmt.Errorf("postgres: roster %s: %w", owner, err)
	}
	if items == nil {
		items = []storage.RosterItem{}
	}
	return items, nil
}

// RosterItem implements storage.Rosters.
func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT contact, name, subscription, ask, pending_in, approved, groups
		FROM roster_items WHERE owner = $1 AND contact = $2`, owner, contact)
	item, err := pgx.CollectExactlyOneRow(rows, scanRosterItem)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.RosterItem{}, fmt.Errorf("postgres: roster item %s of %s: %w", contact, owner, storage.ErrNotFound)
	}
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("postgres: roster item %s of %s: %w", contact, owner, err)
	}
	return item, nil
}

// PutRosterItem implements storage.Rosters. With a quota, the count and the
// insert run under the owner's advisory lock (see lockOwner).
func (s *Store) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem, max int) error {
	item = item.Normal()
	groups := item.Groups
	if groups == nil {
		groups = []string{} // NOT NULL; a nil slice would be sent as NULL
	}
	const upsert = `
		INSERT INTO roster_items (owner, contact, name, subscription, ask, pending_in, approved, groups)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (owner, contact) DO UPDATE SET
			name = excluded.name, subscription = excluded.subscription, ask = excluded.ask,
			pending_in = excluded.pending_in, approved = excluded.approved, groups = excluded.groups`
	args := []any{owner, item.Contact, item.Name, item.Subscription, item.Ask, item.PendingIn, item.Approved, groups}
	var err error
	if max <= 0 {
		_, err = s.pool.Exec(ctx, upsert, args...)
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := lockOwner(ctx, tx, rosterLock, owner); err != nil {
				return err
			}
			var exists bool
			var n int
			if err := tx.QueryRow(ctx, `
				SELECT EXISTS (SELECT 1 FROM roster_items WHERE owner = $1 AND contact = $2),
					(SELECT count(*) FROM roster_items WHERE owner = $1)`,
				owner, item.Contact).Scan(&exists, &n); err != nil {
				return err
			}
			if !exists && n >= max {
				return fmt.Errorf("%d items: %w", n, storage.ErrLimit)
			}
			_, err := tx.Exec(ctx, upsert, args...)
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("postgres: put roster item %s of %s: %w", item.Contact, owner, err)
	}
	return nil
}

// DeleteRosterItem implements storage.Rosters.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM roster_items WHERE owner = $1 AND contact = $2`, owner, contact)
	return oneRow(tag, err, "delete roster item of "+owner, contact)
}

func scanRosterItem(row pgx.CollectableRow) (storage.RosterItem, error) {
	var item storage.RosterItem
	if err := row.Scan(&item.Contact, &item.Name, &item.Subscription,
		&item.Ask, &item.PendingIn, &item.Approved, &item.Groups); err != nil {
		return storage.RosterItem{}, err
	}
	item.Groups = storage.NormalGroups(item.Groups) // in case another writer did not sort them
	return item, nil
}
