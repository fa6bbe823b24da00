package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xmppd/xmppd/storage"
)

// foreignKeyViolation is the SQLSTATE of a reference to a missing row.
const foreignKeyViolation = "23503"

// CreateGroup implements storage.Groups. A project's Parent must be a team;
// a team has no Parent.
func (s *Store) CreateGroup(ctx context.Context, g storage.Group) error {
	if err := g.Validate(); err != nil {
		return fmt.Errorf("postgres: create group %s: %w", g.ID, err)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if g.Parent != "" {
			// FOR SHARE: the parent cannot go or change kind before commit.
			var kind string
			err := tx.QueryRow(ctx, `SELECT kind FROM groups WHERE id = $1 FOR SHARE`, g.Parent).Scan(&kind)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("parent %s: %w", g.Parent, storage.ErrNotFound)
			}
			if err != nil {
				return err
			}
			if kind != storage.KindTeam {
				return fmt.Errorf("parent %s is a %s, not a team", g.Parent, kind)
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO groups (id, kind, name, parent) VALUES ($1, $2, $3, NULLIF($4, ''))`,
			g.ID, g.Kind, g.Name, g.Parent)
		switch pgErr, _ := errors.AsType[*pgconn.PgError](err); {
		case pgErr != nil && pgErr.Code == uniqueViolation:
			return storage.ErrExists
		case pgErr != nil && pgErr.Code == foreignKeyViolation: // the parent went meanwhile
			return fmt.Errorf("parent %s: %w", g.Parent, storage.ErrNotFound)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create group %s: %w", g.ID, err)
	}
	return nil
}

// DeleteGroup implements storage.Groups. Memberships go by ON DELETE
// CASCADE; the team's projects stay, without a team (ON DELETE SET NULL).
func (s *Store) DeleteGroup(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM groups WHERE id = $1`, id)
	return oneRow(tag, err, "delete group", id)
}

// RenameGroup implements storage.Groups; the update trigger notifies
// watches.
func (s *Store) RenameGroup(ctx context.Context, id, name string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE groups SET name = $1 WHERE id = $2`, name, id)
	return oneRow(tag, err, "rename group", id)
}

// Group implements storage.Groups.
func (s *Store) Group(ctx context.Context, id string) (storage.Group, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, kind, name, coalesce(parent, '') FROM groups WHERE id = $1`, id)
	g, err := pgx.CollectExactlyOneRow(rows, scanGroup)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Group{}, fmt.Errorf("postgres: group %s: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Group{}, fmt.Errorf("postgres: group %s: %w", id, err)
	}
	return g, nil
}

// ListGroups implements storage.Groups; the order is byte order (the id
// column is COLLATE "C").
func (s *Store) ListGroups(ctx context.Context) ([]storage.Group, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, kind, name, coalesce(parent, '') FROM groups ORDER BY id`)
	groups, err := pgx.CollectRows(rows, scanGroup)
	if err != nil {
		return nil, fmt.Errorf("postgres: list groups: %w", err)
	}
	if groups == nil {
		groups = []storage.Group{}
	}
	return groups, nil
}

func scanGroup(row pgx.CollectableRow) (storage.Group, error) {
	var g storage.Group
	err := row.Scan(&g.ID, &g.Kind, &g.Name, &g.Parent)
	return g, err
}

// AddMember implements storage.Groups.
func (s *Store) AddMember(ctx context.Context, group, jid string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO group_members (group_id, jid) VALUES ($1, $2)`, group, jid)
	switch pgErr, _ := errors.AsType[*pgconn.PgError](err); {
	case pgErr != nil && pgErr.Code == uniqueViolation:
		return fmt.Errorf("postgres: add %s to group %s: %w", jid, group, storage.ErrExists)
	case pgErr != nil && pgErr.Code == foreignKeyViolation:
		return fmt.Errorf("postgres: add %s to group %s: group %w", jid, group, storage.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: add %s to group %s: %w", jid, group, err)
	}
	return nil
}

// ChangeMembers implements storage.Groups: one transaction, the group
// locked FOR SHARE so that it cannot go before commit.
func (s *Store) ChangeMembers(ctx context.Context, group string, add, remove []string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM groups WHERE id = $1 FOR SHARE`, group).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if len(add) > 0 {
			_, err := tx.Exec(ctx, `INSERT INTO group_members (group_id, jid) SELECT $1, unnest($2::text[])
				ON CONFLICT DO NOTHING`, group, add)
			if err != nil {
				return err
			}
		}
		if len(remove) > 0 {
			_, err := tx.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1 AND jid = ANY($2::text[])`, group, remove)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: change members of group %s: %w", group, err)
	}
	return nil
}

// RemoveMember implements storage.Groups.
func (s *Store) RemoveMember(ctx context.Context, group, jid string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM group_members WHERE group_id = $1 AND jid = $2`, group, jid)
	return oneRow(tag, err, "remove member of group "+group, jid)
}

// Members implements storage.Groups. One statement, so that "no such group"
// and "no members" are told apart in one snapshot.
func (s *Store) Members(ctx context.Context, group string) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT m.jid FROM groups AS g LEFT JOIN group_members AS m ON m.group_id = g.id
		WHERE g.id = $1 ORDER BY m.jid`, group)
	jids, err := pgx.CollectRows(rows, pgx.RowTo[*string])
	if err != nil {
		return nil, fmt.Errorf("postgres: members of %s: %w", group, err)
	}
	if len(jids) == 0 {
		return nil, fmt.Errorf("postgres: members of %s: %w", group, storage.ErrNotFound)
	}
	members := []string{}
	for _, j := range jids {
		if j != nil {
			members = append(members, *j)
		}
	}
	return members, nil
}

// CoMembers implements storage.Groups.
func (s *Store) CoMembers(ctx context.Context, jid string) ([]storage.SharedContact, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT DISTINCT o.jid, g.name
		FROM group_members AS m
		JOIN group_members AS o ON o.group_id = m.group_id AND o.jid <> m.jid
		JOIN groups AS g ON g.id = m.group_id
		WHERE m.jid = $1
		ORDER BY o.jid`, jid)
	contacts := []storage.SharedContact{}
	var other, name string
	_, err := pgx.ForEachRow(rows, []any{&other, &name}, func() error {
		if n := len(contacts); n > 0 && contacts[n-1].JID == other {
			contacts[n-1].Groups = append(contacts[n-1].Groups, name)
		} else {
			contacts = append(contacts, storage.SharedContact{JID: other, Groups: []string{name}})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: co-members of %s: %w", jid, err)
	}
	for i := range contacts {
		contacts[i].Groups = storage.NormalGroups(contacts[i].Groups) // byte order; two groups may share a name
	}
	return contacts, nil
}

// IsMember implements storage.Groups.
func (s *Store) IsMember(ctx context.Context, jid string) (bool, error) {
	var member bool
	if err := s.pool.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM group_members WHERE jid = $1)`, jid).Scan(&member); err != nil {
		return false, fmt.Errorf("postgres: is member %s: %w", jid, err)
	}
	return member, nil
}
