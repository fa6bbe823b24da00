package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xmppd/xmppd/storage"
)

// SaveRoom implements storage.Rooms. Config is stored as jsonb (pgx
// marshals it by its json tags); Created is written by the first save only.
func (s *Store) SaveRoom(ctx context.Context, r storage.Room) error {
	created := r.Created
	if created.IsZero() {
		created = time.Now()
	}
	if _, err := s.pool.Exec(ctx, `
		INSERT INTO rooms (jid, config, subject, subject_by, created_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (jid) DO UPDATE SET
			config = excluded.config, subject = excluded.subject, subject_by = excluded.subject_by`,
		r.JID, r.Config, r.Subject, r.SubjectBy, created); err != nil {
		return fmt.Errorf("postgres: save room %s: %w", r.JID, err)
	}
	return nil
}

// Room implements storage.Rooms.
func (s *Store) Room(ctx context.Context, jid string) (storage.Room, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT jid, config, subject, subject_by, created_at FROM rooms WHERE jid = $1`, jid)
	r, err := pgx.CollectExactlyOneRow(rows, scanRoom)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Room{}, fmt.Errorf("postgres: room %s: %w", jid, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Room{}, fmt.Errorf("postgres: room %s: %w", jid, err)
	}
	return r, nil
}

// ListRooms implements storage.Rooms; the order is byte order (the jid column
// is COLLATE "C").
func (s *Store) ListRooms(ctx context.Context) ([]storage.Room, error) {
	rows, _ := s.pool.Query(ctx,
		`SELECT jid, config, subject, subject_by, created_at FROM rooms ORDER BY jid`)
	rooms, err := pgx.CollectRows(rows, scanRoom)
	if err != nil {
		return nil, fmt.Errorf("postgres: list rooms: %w", err)
	}
	if rooms == nil {
		rooms = []storage.Room{}
	}
	return rooms, nil
}

func scanRoom(row pgx.CollectableRow) (storage.Room, error) {
	var r storage.Room
	if err := row.Scan(&r.JID, &r.Config, &r.Subject, &r.SubjectBy, &r.Created); err != nil {
		return storage.Room{}, err
	}
	r.Created = r.Created.UTC()
	return r, nil
}

// DeleteRoom implements storage.Rooms. Affiliations go by ON DELETE CASCADE,
// the archive in the same transaction (archive_messages holds accounts'
// archives too, so it has no foreign key to rooms).
func (s *Store) DeleteRoom(ctx context.Context, jid string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM rooms WHERE jid = $1`, jid)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		_, err = tx.Exec(ctx, `DELETE FROM archive_messages WHERE owner = $1`, jid)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete room %s: %w", jid, err)
	}
	return nil
}

// SetAffiliation implements storage.Rooms.
func (s *Store) SetAffiliation(ctx context.Context, room string, a storage.Affiliation) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("postgres: set affiliation of %s with %s: %w", a.JID, room, err)
	}
	if a.Affiliation == storage.AffNone {
		return s.removeAffiliation(ctx, room, a.JID)
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO room_affiliations (room, jid, affiliation, nick, reason) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (room, jid) DO UPDATE SET
			affiliation = excluded.affiliation, nick = excluded.nick, reason = excluded.reason`,
		room, a.JID, a.Affiliation, a.Nick, a.Reason)
	switch pgErr, _ := errors.AsType[*pgconn.PgError](err); {
	case pgErr != nil && pgErr.Code == foreignKeyViolation:
		return fmt.Errorf("postgres: set affiliation of %s with %s: room %w", a.JID, room, storage.ErrNotFound)
	case err != nil:
		return fmt.Errorf("postgres: set affiliation of %s with %s: %w", a.JID, room, err)
	}
	return nil
}

// removeAffiliation deletes jid's affiliation with room, if it has one. One
// statement, so that the delete and the check that the room exists see one
// snapshot.
func (s *Store) removeAffiliation(ctx context.Context, room, jid string) error {
	var exists bool
	if err := s.pool.QueryRow(ctx, `
		WITH removed AS (DELETE FROM room_affiliations WHERE room = $1 AND jid = $2)
		SELECT EXISTS (SELECT 1 FROM rooms WHERE jid = $1)`, room, jid).Scan(&exists); err != nil {
		return fmt.Errorf("postgres: remove affiliation of %s with %s: %w", jid, room, err)
	}
	if !exists {
		return fmt.Errorf("postgres: remove affiliation of %s with %s: room %w", jid, room, storage.ErrNotFound)
	}
	return nil
}

// Affiliations implements storage.Rooms; the order is byte order (the jid
// column is COLLATE "C"). One statement, so that "no such room" and "no
// affiliations" are told apart in one snapshot.
func (s *Store) Affiliations(ctx context.Context, room string) ([]storage.Affiliation, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT a.jid, a.affiliation, a.nick, a.reason
		FROM rooms AS r LEFT JOIN room_affiliations AS a ON a.room = r.jid
		WHERE r.jid = $1 ORDER BY a.jid`, room)
	var found bool
	affs := []storage.Affiliation{}
	var jid, aff, nick, reason *string
	_, err := pgx.ForEachRow(rows, []any{&jid, &aff, &nick, &reason}, func() error {
		found = true
		if jid != nil {
			affs = append(affs, storage.Affiliation{JID: *jid, Affiliation: *aff, Nick: *nick, Reason: *reason})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: affiliations of %s: %w", room, err)
	}
	if !found {
		return nil, fmt.Errorf("postgres: affiliations of %s: %w", room, storage.ErrNotFound)
	}
	return affs, nil
}
