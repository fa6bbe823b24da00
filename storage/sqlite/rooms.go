package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// SaveRoom implements storage.Rooms. Config is stored as JSON by its json
// tags; Created as Unix seconds, written by the first save only.
func (s *Store) SaveRoom(ctx context.Context, r storage.Room) error {
	config, err := json.Marshal(r.Config)
	if err != nil {
		return fmt.Errorf("sqlite: save room %s: %w", r.JID, err)
	}
	created := r.Created
	if created.IsZero() {
		created = time.Now()
	}
	if _, err := s.exec(ctx, `
		INSERT INTO rooms (jid, config, subject, subject_by, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (jid) DO UPDATE SET
			config = excluded.config, subject = excluded.subject, subject_by = excluded.subject_by`,
		r.JID, string(config), r.Subject, r.SubjectBy, created.Unix()); err != nil {
		return fmt.Errorf("sqlite: save room %s: %w", r.JID, err)
	}
	return nil
}

// Room implements storage.Rooms.
func (s *Store) Room(ctx context.Context, jid string) (storage.Room, error) {
	r, err := scanRoom(s.queryRow(ctx,
		`SELECT jid, config, subject, subject_by, created_at FROM rooms WHERE jid = ?`, jid))
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Room{}, fmt.Errorf("sqlite: room %s: %w", jid, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Room{}, fmt.Errorf("sqlite: room %s: %w", jid, err)
	}
	return r, nil
}

// ListRooms implements storage.Rooms; the order is byte order (BINARY
// collation).
func (s *Store) ListRooms(ctx context.Context) ([]storage.Room, error) {
	rows, err := s.query(ctx,
		`SELECT jid, config, subject, subject_by, created_at FROM rooms ORDER BY jid`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list rooms: %w", err)
	}
	defer rows.Close()
	rooms := []storage.Room{}
	for rows.Next() {
		r, err := scanRoom(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list rooms: %w", err)
		}
		rooms = append(rooms, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list rooms: %w", err)
	}
	return rooms, nil
}

// DeleteRoom implements storage.Rooms. Affiliations go by ON DELETE CASCADE,
// the archive in the same transaction (archive_messages holds accounts'
// archives too, so it has no foreign key to rooms).
func (s *Store) DeleteRoom(ctx context.Context, jid string) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: delete room %s: %w", jid, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM rooms WHERE jid = ?`, jid)
	if err := oneRow(res, err, "delete room", jid); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM archive_messages WHERE owner = ?`, jid); err != nil {
		return fmt.Errorf("sqlite: delete room %s: %w", jid, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete room %s: %w", jid, err)
	}
	return nil
}

// SetAffiliation implements storage.Rooms.
func (s *Store) SetAffiliation(ctx context.Context, room string, a storage.Affiliation) error {
	if err := a.Validate(); err != nil {
		return fmt.Errorf("sqlite: set affiliation of %s with %s: %w", a.JID, room, err)
	}
	if a.Affiliation == storage.AffNone {
		return s.removeAffiliation(ctx, room, a.JID)
	}
	_, err := s.exec(ctx, `
		INSERT INTO room_affiliations (room, jid, affiliation, nick, reason) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (room, jid) DO UPDATE SET
			affiliation = excluded.affiliation, nick = excluded.nick, reason = excluded.reason`,
		room, a.JID, a.Affiliation, a.Nick, a.Reason)
	switch {
	case isForeignKeyViolation(err):
		return fmt.Errorf("sqlite: set affiliation of %s with %s: room %w", a.JID, room, storage.ErrNotFound)
	case err != nil:
		return fmt.Errorf("sqlite: set affiliation of %s with %s: %w", a.JID, room, err)
	}
	return nil
}

// removeAffiliation deletes jid's affiliation with room, if it has one. The
// transaction takes the write lock at BEGIN (see Open), so the room cannot
// come or go between the check and the delete.
func (s *Store) removeAffiliation(ctx context.Context, room, jid string) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: remove affiliation of %s with %s: %w", jid, room, err)
	}
	defer tx.Rollback()
	var exists bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM rooms WHERE jid = ?)`, room).Scan(&exists); err != nil {
		return fmt.Errorf("sqlite: remove affiliation of %s with %s: %w", jid, room, err)
	}
	if !exists {
		return fmt.Errorf("sqlite: remove affiliation of %s with %s: room %w", jid, room, storage.ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx,
		`DELETE FROM room_affiliations WHERE room = ? AND jid = ?`, room, jid); err != nil {
		return fmt.Errorf("sqlite: remove affiliation of %s with %s: %w", jid, room, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: remove affiliation of %s with %s: %w", jid, room, err)
	}
	return nil
}

// Affiliations implements storage.Rooms. One statement, so that "no such
// room" and "no affiliations" are told apart from one snapshot.
func (s *Store) Affiliations(ctx context.Context, room string) ([]storage.Affiliation, error) {
	rows, err := s.query(ctx, `
		SELECT a.jid, a.affiliation, a.nick, a.reason
		FROM rooms AS r LEFT JOIN room_affiliations AS a ON a.room = r.jid
		WHERE r.jid = ? ORDER BY a.jid`, room)
	if err != nil {
		return nil, fmt.Errorf("sqlite: affiliations of %s: %w", room, err)
	}
	defer rows.Close()
	var found bool
	affs := []storage.Affiliation{}
	for rows.Next() {
		found = true
		var jid, aff, nick, reason sql.NullString
		if err := rows.Scan(&jid, &aff, &nick, &reason); err != nil {
			return nil, fmt.Errorf("sqlite: affiliations of %s: %w", room, err)
		}
		if jid.Valid {
			affs = append(affs, storage.Affiliation{JID: jid.String, Affiliation: aff.String, Nick: nick.String, Reason: reason.String})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: affiliations of %s: %w", room, err)
	}
	if !found {
		return nil, fmt.Errorf("sqlite: affiliations of %s: %w", room, storage.ErrNotFound)
	}
	return affs, nil
}

func scanRoom(row interface{ Scan(...any) error }) (storage.Room, error) {
	var r storage.Room
	var config string
	var created int64
	if err := row.Scan(&r.JID, &config, &r.Subject, &r.SubjectBy, &created); err != nil {
		return storage.Room{}, err
	}
	if err := json.Unmarshal([]byte(config), &r.Config); err != nil {
		return storage.Room{}, fmt.Errorf("config of %s: %w", r.JID, err)
	}
	r.Created = time.Unix(created, 0).UTC()
	return r, nil
}
