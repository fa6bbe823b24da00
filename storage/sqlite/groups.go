package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/xmppd/xmppd/storage"
)

// CreateGroup implements storage.Groups. A project's Parent must be a team;
// a team has no Parent.
func (s *Store) CreateGroup(ctx context.Context, g storage.Group) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("sqlite: create group %s: %w", g.ID, err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: create group %s: %w", g.ID, err)
	}
	defer tx.Rollback()
	if g.Parent != "" {
		var kind string
		err := tx.QueryRowContext(ctx, `SELECT kind FROM groups WHERE id = ?`, g.Parent).Scan(&kind)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("sqlite: create group %s: parent %s: %w", g.ID, g.Parent, storage.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("sqlite: create group %s: %w", g.ID, err)
		}
		if kind != storage.KindTeam {
			return fmt.Errorf("sqlite: create group %s: parent %s is a %s, not a team", g.ID, g.Parent, kind)
		}
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO groups (id, kind, name, parent) VALUES (?, ?, ?, NULLIF(?, ''))`,
		g.ID, g.Kind, g.Name, g.Parent)
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create group %s: %w", g.ID, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create group %s: %w", g.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create group %s: %w", g.ID, err)
	}
	return nil
}

// DeleteGroup implements storage.Groups. Memberships go by ON DELETE
// CASCADE; the team's projects stay, without a team (ON DELETE SET NULL).
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM groups WHERE id = ?`, id)
	return oneRow(res, err, "delete group", id)
}

// RenameGroup implements storage.Groups; the update trigger records the
// change for watches.
func (s *Store) RenameGroup(ctx context.Context, id, name string) error {
	res, err := s.exec(ctx, `UPDATE groups SET name = ? WHERE id = ?`, name, id)
	return oneRow(res, err, "rename group", id)
}

// Group implements storage.Groups.
func (s *Store) Group(ctx context.Context, id string) (storage.Group, error) {
	var g storage.Group
	err := s.queryRow(ctx,
		`SELECT id, kind, name, coalesce(parent, '') FROM groups WHERE id = ?`, id).
		Scan(&g.ID, &g.Kind, &g.Name, &g.Parent)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Group{}, fmt.Errorf("sqlite: group %s: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Group{}, fmt.Errorf("sqlite: group %s: %w", id, err)
	}
	return g, nil
}

// ListGroups implements storage.Groups.
func (s *Store) ListGroups(ctx context.Context) ([]storage.Group, error) {
	rows, err := s.query(ctx,
		`SELECT id, kind, name, coalesce(parent, '') FROM groups ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list groups: %w", err)
	}
	defer rows.Close()
	groups := []storage.Group{}
	for rows.Next() {
		var g storage.Group
		if err := rows.Scan(&g.ID, &g.Kind, &g.Name, &g.Parent); err != nil {
			return nil, fmt.Errorf("sqlite: list groups: %w", err)
		}
		groups = append(groups, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list groups: %w", err)
	}
	return groups, nil
}

// AddMember implements storage.Groups.
func (s *Store) AddMember(ctx context.Context, group, jid string) error {
	_, err := s.exec(ctx, `INSERT INTO group_members (group_id, jid) VALUES (?, ?)`, group, jid)
	switch {
	case isUniqueViolation(err):
		return fmt.Errorf("sqlite: add %s to group %s: %w", jid, group, storage.ErrExists)
	case isForeignKeyViolation(err):
		return fmt.Errorf("sqlite: add %s to group %s: group %w", jid, group, storage.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: add %s to group %s: %w", jid, group, err)
	}
	return nil
}

// ChangeMembers implements storage.Groups in one transaction.
func (s *Store) ChangeMembers(ctx context.Context, group string, add, remove []string) error {
	err := s.changeMembers(ctx, group, add, remove)
	if err != nil {
		return fmt.Errorf("sqlite: change members of group %s: %w", group, err)
	}
	return nil
}

func (s *Store) changeMembers(ctx context.Context, group string, add, remove []string) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM groups WHERE id = ?`, group).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.ErrNotFound
	}
	if err != nil {
		return err
	}
	for _, j := range add {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_members (group_id, jid) VALUES (?, ?)`, group, j); err != nil {
			return err
		}
	}
	for _, j := range remove {
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ? AND jid = ?`, group, j); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// RemoveMember implements storage.Groups.
func (s *Store) RemoveMember(ctx context.Context, group, jid string) error {
	res, err := s.exec(ctx, `DELETE FROM group_members WHERE group_id = ? AND jid = ?`, group, jid)
	return oneRow(res, err, "remove member of group "+group, jid)
}

// Members implements storage.Groups. One statement, so that "no such group"
// and "no members" are told apart from one snapshot.
func (s *Store) Members(ctx context.Context, group string) ([]string, error) {
	rows, err := s.query(ctx, `
		SELECT m.jid FROM groups AS g LEFT JOIN group_members AS m ON m.group_id = g.id
		WHERE g.id = ? ORDER BY m.jid`, group)
	if err != nil {
		return nil, fmt.Errorf("sqlite: members of %s: %w", group, err)
	}
	defer rows.Close()
	var found bool
	jids := []string{}
	for rows.Next() {
		found = true
		var jid sql.NullString
		if err := rows.Scan(&jid); err != nil {
			return nil, fmt.Errorf("sqlite: members of %s: %w", group, err)
		}
		if jid.Valid {
			jids = append(jids, jid.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: members of %s: %w", group, err)
	}
	if !found {
		return nil, fmt.Errorf("sqlite: members of %s: %w", group, storage.ErrNotFound)
	}
	return jids, nil
}

// CoMembers implements storage.Groups.
func (s *Store) CoMembers(ctx context.Context, jid string) ([]storage.SharedContact, error) {
	rows, err := s.query(ctx, `
		SELECT DISTINCT o.jid, g.name
		FROM group_members AS m
		JOIN group_members AS o ON o.group_id = m.group_id AND o.jid <> m.jid
		JOIN groups AS g ON g.id = m.group_id
		WHERE m.jid = ?
		ORDER BY o.jid`, jid)
	if err != nil {
		return nil, fmt.Errorf("sqlite: co-members of %s: %w", jid, err)
	}
	defer rows.Close()
	contacts := []storage.SharedContact{}
	for rows.Next() {
		var other, name string
		if err := rows.Scan(&other, &name); err != nil {
			return nil, fmt.Errorf("sqlite: co-members of %s: %w", jid, err)
		}
		if n := len(contacts); n > 0 && contacts[n-1].JID == other {
			contacts[n-1].Groups = append(contacts[n-1].Groups, name)
		} else {
			contacts = append(contacts, storage.SharedContact{JID: other, Groups: []string{name}})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: co-members of %s: %w", jid, err)
	}
	for i := range contacts {
		contacts[i].Groups = storage.NormalGroups(contacts[i].Groups) // two groups may share a name
	}
	return contacts, nil
}

// IsMember implements storage.Groups.
func (s *Store) IsMember(ctx context.Context, jid string) (bool, error) {
	var member bool
	if err := s.queryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM group_members WHERE jid = ?)`, jid).Scan(&member); err != nil {
		return false, fmt.Errorf("sqlite: is member %s: %w", jid, err)
	}
	return member, nil
}

// SQLite cannot tell one process of another's commit, so a watch polls: the
// triggers of migration 0004 append a row to group_changes for every change
// to groups or group_members, whoever makes it (this process, xmppctl, the
// app's own SQL), and every pollInterval a watch reads the rows after the
// last one it saw. Every pruneInterval it also deletes rows older than
// changeRetention. A watch that finds a gap after the last ID it read (rows
// pruned before it got to them) reports GroupChange{}: resynchronise.
const (
	pollInterval    = 500 * time.Millisecond
	pruneInterval   = time.Minute
	changeRetention = 5 * time.Minute
)

// WatchGroups implements storage.Groups by polling group_changes (see
// pollInterval). The watch also ends when the store is closed.
func (s *Store) WatchGroups(ctx context.Context) (<-chan storage.GroupChange, error) {
	// The sequence, not max(id): the table may have been pruned empty.
	var last int64
	if err := s.queryRow(ctx, `
		SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'group_changes'), 0)`).Scan(&last); err != nil {
		return nil, fmt.Errorf("sqlite: watch groups: %w", err)
	}
	return s.watches.Start(ctx, func(ctx context.Context, send func(storage.GroupChange) bool) {
		s.watch(ctx, last, send)
	}), nil
}

func (s *Store) watch(ctx context.Context, last int64, send func(storage.GroupChange) bool) {
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	pruned := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		}
		changes, next, err := s.changesAfter(ctx, last)
		if err != nil {
			continue // the rows stay; read them at the next tick
		}
		for _, c := range changes {
			if !send(c) {
				return
			}
		}
		last = next
		if time.Since(pruned) >= pruneInterval {
			pruned = time.Now()
			s.pruneChanges(ctx) // best effort: on failure, the next prune deletes them
		}
	}
}

// pruneChanges deletes the rows of group_changes older than changeRetention.
func (s *Store) pruneChanges(ctx context.Context) error {
	_, err := s.exec(ctx,
		`DELETE FROM group_changes WHERE at < CAST(strftime('%s', 'now') AS INTEGER) - ?`,
		int64(changeRetention/time.Second))
	return err
}

// changesAfter returns the changes recorded after ID last, and the last ID
// read.
func (s *Store) changesAfter(ctx context.Context, last int64) ([]storage.GroupChange, int64, error) {
	rows, err := s.query(ctx,
		`SELECT id, group_id, jid FROM group_changes WHERE id > ? ORDER BY id`, last)
	if err != nil {
		return nil, last, err
	}
	defer rows.Close()
	var changes []storage.GroupChange
	next, gap := last, false
	for rows.Next() {
		var id int64
		var c storage.GroupChange
		if err := rows.Scan(&id, &c.Group, &c.JID); err != nil {
			return nil, last, err
		}
		gap = gap || id != next+1
		changes = append(changes, c)
		next = id
	}
	if err := rows.Err(); err != nil {
		return nil, last, err
	}
	if gap {
		changes = append([]storage.GroupChange{{}}, changes...)
	}
	return changes, next, nil
}

func isForeignKeyViolation(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}
