package sqlite

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/xmppd/xmppd/storage"
)

// PutPush implements storage.Push. The transaction takes the write lock at
// BEGIN (see Open), so the count and the insert see the same rows: the
// limit is exact.
func (s *Store) PutPush(ctx context.Context, owner string, r storage.PushRegistration, max int) error {
	fields, err := marshalPushFields(r.Fields)
	if err != nil {
		return fmt.Errorf("sqlite: put push %s %s of %s: %w", r.JID, r.Node, owner, err)
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: put push %s %s of %s: %w", r.JID, r.Node, owner, err)
	}
	defer tx.Rollback()
	if max > 0 {
		var exists bool
		var n int
		if err := tx.QueryRowContext(ctx, `
			SELECT EXISTS (SELECT 1 FROM push_registrations WHERE owner = ?1 AND jid = ?2 AND node = ?3),
				(SELECT count(*) FROM push_registrations WHERE owner = ?1)`,
			owner, r.JID, r.Node).Scan(&exists, &n); err != nil {
			return fmt.Errorf("sqlite: put push %s %s of %s: %w", r.JID, r.Node, owner, err)
		}
		if !exists && n >= max {
			return fmt.Errorf("sqlite: put push %s %s of %s: %d registrations: %w", r.JID, r.Node, owner, n, storage.ErrLimit)
		}
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO push_registrations (owner, jid, node, fields) VALUES (?, ?, ?, ?)
		ON CONFLICT (owner, jid, node) DO UPDATE SET fields = excluded.fields`,
		owner, r.JID, r.Node, fields); err != nil {
		return fmt.Errorf("sqlite: put push %s %s of %s: %w", r.JID, r.Node, owner, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: put push %s %s of %s: %w", r.JID, r.Node, owner, err)
	}
	return nil
}

// DeletePush implements storage.Push.
func (s *Store) DeletePush(ctx context.Context, owner, jid, node string) (int, error) {
	res, err := s.exec(ctx, `
		DELETE FROM push_registrations WHERE owner = ?1 AND jid = ?2 AND (?3 = '' OR node = ?3)`,
		owner, jid, node)
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete push %s of %s: %w", jid, owner, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete push %s of %s: %w", jid, owner, err)
	}
	return int(n), nil
}

// PushRegistrations implements storage.Push; the order is byte order
// (BINARY collation).
func (s *Store) PushRegistrations(ctx context.Context, owner string) ([]storage.PushRegistration, error) {
	rows, err := s.query(ctx,
		`SELECT jid, node, fields FROM push_registrations WHERE owner = ? ORDER BY jid, node`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: push registrations of %s: %w", owner, err)
	}
	defer rows.Close()
	regs := []storage.PushRegistration{}
	for rows.Next() {
		var r storage.PushRegistration
		var fields string
		if err := rows.Scan(&r.JID, &r.Node, &fields); err != nil {
			return nil, fmt.Errorf("sqlite: push registrations of %s: %w", owner, err)
		}
		if r.Fields, err = unmarshalPushFields([]byte(fields)); err != nil {
			return nil, fmt.Errorf("sqlite: push registration %s %s of %s: %w", r.JID, r.Node, owner, err)
		}
		regs = append(regs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: push registrations of %s: %w", owner, err)
	}
	return regs, nil
}

func marshalPushFields(fields []storage.PushField) (string, error) {
	if fields == nil {
		fields = []storage.PushField{}
	}
	b, err := json.Marshal(fields)
	return string(b), err
}

// unmarshalPushFields reads what marshalPushFields wrote; an empty array
// is nil, as PushRegistration.Fields is when the client sent no form.
func unmarshalPushFields(b []byte) ([]storage.PushField, error) {
	var fields []storage.PushField
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	if len(fields) == 0 {
		return nil, nil
	}
	return fields, nil
}
