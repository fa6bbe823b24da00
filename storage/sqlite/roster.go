package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/xmppd/xmppd/storage"
)

// Roster implements storage.Rosters.
func (s *Store) Roster(ctx context.Context, owner string) ([]storage.RosterItem, error) {
	rows, err := s.query(ctx, `
		SELECT contact, name, subscription, ask, pending_in, approved, groups
		FROM roster_items WHERE owner = ? ORDER BY contact`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: roster %s: %w", owner, err)
	}
	defer rows.Close()
	items := []storage.RosterItem{}
	for rows.Next() {
		item, err := scanRosterItem(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: roster %s: %w", owner, err)
		}
		items = append(items, item)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: roster %s: %w", owner, err)
	}
	return items, nil
}

// RosterItem implements storage.Rosters.
func (s *Store) RosterItem(ctx context.Context, owner, contact string) (storage.RosterItem, error) {
	item, err := scanRosterItem(s.queryRow(ctx, `
		SELECT contact, name, subscription, ask, pending_in, approved, groups
		FROM roster_items WHERE owner = ? AND contact = ?`, owner, contact))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.RosterItem{}, fmt.Errorf("sqlite: roster item %s of %s: %w", contact, owner, storage.ErrNotFound)
	}
	if err != nil {
		return storage.RosterItem{}, fmt.Errorf("sqlite: roster item %s of %s: %w", contact, owner, err)
	}
	return item, nil
}

// PutRosterItem implements storage.Rosters. The transaction takes the write
// lock at BEGIN (see Open), so counting and inserting cannot interleave with
// another writer's.
func (s *Store) PutRosterItem(ctx context.Context, owner string, item storage.RosterItem, max int) error {
	item = item.Normal()
	groups, err := json.Marshal(item.Groups)
	if err != nil {
		return fmt.Errorf("sqlite: put roster item %s of %s: %w", item.Contact, owner, err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: put roster item %s of %s: %w", item.Contact, owner, err)
	}
	defer tx.Rollback()
	if max > 0 {
		var exists bool
		var n int
		if err := tx.QueryRowContext(ctx, `
			SELECT EXISTS (SELECT 1 FROM roster_items WHERE owner = ?1 AND contact = ?2),
				(SELECT count(*) FROM roster_items WHERE owner = ?1)`,
			owner, item.Contact).Scan(&exists, &n); err != nil {
			return fmt.Errorf("sqlite: put roster item %s of %s: %w", item.Contact, owner, err)
		}
		if !exists && n >= max {
			return fmt.Errorf("sqlite: put roster item %s of %s: %d items: %w", item.Contact, owner, n, storage.ErrLimit)
		}
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO roster_items (owner, contact, name, subscription, ask, pending_in, approved, groups)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (owner, contact) DO UPDATE SET
			name = excluded.name, subscription = excluded.subscription, ask = excluded.ask,
			pending_in = excluded.pending_in, approved = excluded.approved, groups = excluded.groups`,
		owner, item.Contact, item.Name, item.Subscription, item.Ask, item.PendingIn, item.Approved, string(groups)); err != nil {
		return fmt.Errorf("sqlite: put roster item %s of %s: %w", item.Contact, owner, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: put roster item %s of %s: %w", item.Contact, owner, err)
	}
	return nil
}

// DeleteRosterItem implements storage.Rosters.
func (s *Store) DeleteRosterItem(ctx context.Context, owner, contact string) error {
	res, err := s.exec(ctx, `DELETE FROM roster_items WHERE owner = ? AND contact = ?`, owner, contact)
	return oneRow(res, err, "delete roster item of "+owner, contact)
}

func scanRosterItem(row interface{ Scan(...any) error }) (storage.RosterItem, error) {
	var item storage.RosterItem
	var groups string
	if err := row.Scan(&item.Contact, &item.Name, &item.Subscription,
		&item.Ask, &item.PendingIn, &item.Approved, &groups); err != nil {
		return storage.RosterItem{}, err
	}
	if err := json.Unmarshal([]byte(groups), &item.Groups); err != nil {
		return storage.RosterItem{}, fmt.Errorf("groups of %s: %w", item.Contact, err)
	}
	item.Groups = storage.NormalGroups(item.Groups) // in case another writer did not sort them
	return item, nil
}
