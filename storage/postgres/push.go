package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
)

// pushLock is the advisory lock kind that serialises PutPush per account.
const pushLock int32 = 0x70757368 // "push"

// PutPush implements storage.Push. With a limit, the account's advisory
// lock keeps two transactions from both counting max-1 rows and both
// inserting.
func (s *Store) PutPush(ctx context.Context, owner string, r storage.PushRegistration, max int) error {
	fields := r.Fields
	if fields == nil {
		fields = []storage.PushField{}
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("postgres: put push %s %s of %s: %w", r.JID, r.Node, owner, err)
	}
	const upsert = `
		INSERT INTO push_registrations (owner, jid, node, fields) VALUES ($1, $2, $3, $4)
		ON CONFLICT (owner, jid, node) DO UPDATE SET fields = excluded.fields`
	if max <= 0 {
		_, err = s.pool.Exec(ctx, upsert, owner, r.JID, r.Node, string(b))
	} else {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := lockOwner(ctx, tx, pushLock, owner); err != nil {
				return err
			}
			var exists bool
			var n int
			if err := tx.QueryRow(ctx, `
				SELECT EXISTS (SELECT 1 FROM push_registrations WHERE owner = $1 AND jid = $2 AND node = $3),
					(SELECT count(*) FROM push_registrations WHERE owner = $1)`,
				owner, r.JID, r.Node).Scan(&exists, &n); err != nil {
				return err
			}
			if !exists && n >= max {
				return fmt.Errorf("%d registrations: %w", n, storage.ErrLimit)
			}
			_, err := tx.Exec(ctx, upsert, owner, r.JID, r.Node, string(b))
			return err
		})
	}
	if err != nil {
		return fmt.Errorf("postgres: put push %s %s of %s: %w", r.JID, r.Node, owner, err)
	}
	return nil
}

// DeletePush implements storage.Push.
func (s *Store) DeletePush(ctx context.Context, owner, jid, node string) (int, error) {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM push_registrations WHERE owner = $1 AND jid = $2 AND ($3 = '' OR node = $3)`,
		owner, jid, node)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete push %s of %s: %w", jid, owner, err)
	}
	return int(tag.RowsAffected()), nil
}

// PushRegistrations implements storage.Push; the order is byte order (the
// columns are COLLATE "C").
func (s *Store) PushRegistrations(ctx context.Context, owner string) ([]storage.PushRegistration, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT jid, node, fields::text FROM push_registrations WHERE owner = $1 ORDER BY jid, node`, owner)
	regs := []storage.PushRegistration{}
	var r storage.PushRegistration
	var fields string
	_, err := pgx.ForEachRow(rows, []any{&r.JID, &r.Node, &fields}, func() error {
		reg := storage.PushRegistration{JID: r.JID, Node: r.Node}
		if err := json.Unmarshal([]byte(fields), &reg.Fields); err != nil {
			return fmt.Errorf("registration %s %s: %w", r.JID, r.Node, err)
		}
		if len(reg.Fields) == 0 {
			reg.Fields = nil
		}
		regs = append(regs, reg)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: push registrations of %s: %w", owner, err)
	}
	return regs, nil
}
