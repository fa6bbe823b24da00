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

// uploadLock is the advisory lock kind that serialises PutUploadSlot per
// account.
const uploadLock int32 = 0x75706c64 // "upld"

// quotaBytesSQL sums what counts against an account's upload quota at a
// time ($2).
const quotaBytesSQL = `
	SELECT coalesce(sum(size), 0)::bigint FROM upload_slots
	WHERE owner = $1 AND (uploaded IS NOT NULL OR expires > $2)`

// PutUploadSlot implements storage.Uploads. With a quota, the account's
// advisory lock keeps two transactions from both finding room for one
// more file and both inserting.
func (s *Store) PutUploadSlot(ctx context.Context, u storage.UploadSlot, quota int64, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if quota > 0 {
			if err := lockOwner(ctx, tx, uploadLock, u.Owner); err != nil {
				return err
			}
			var used int64
			if err := tx.QueryRow(ctx, quotaBytesSQL, u.Owner, now).Scan(&used); err != nil {
				return err
			}
			if used+u.Size > quota {
				return fmt.Errorf("%d bytes stored or reserved: %w", used, storage.ErrLimit)
			}
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO upload_slots (token, owner, filename, size, content_type, created, expires, uploaded)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			u.Token, u.Owner, u.Filename, u.Size, u.ContentType, u.Created, u.Expires, nullTime(u.Uploaded))
		if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == uniqueViolation {
			return storage.ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: put upload slot of %s: %w", u.Owner, err)
	}
	return nil
}

// nullTime is t, or NULL for the zero time.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

const uploadColumns = `token, owner, filename, size, content_type, created, expires, uploaded`

func scanUpload(row pgx.Row) (storage.UploadSlot, error) {
	var u storage.UploadSlot
	var uploaded *time.Time
	if err := row.Scan(&u.Token, &u.Owner, &u.Filename, &u.Size, &u.ContentType, &u.Created, &u.Expires, &uploaded); err != nil {
		return u, err
	}
	u.Created, u.Expires = u.Created.UTC(), u.Expires.UTC()
	if uploaded != nil {
		u.Uploaded = uploaded.UTC()
	}
	return u, nil
}

// UploadSlot implements storage.Uploads.
func (s *Store) UploadSlot(ctx context.Context, token string) (storage.UploadSlot, error) {
	u, err := scanUpload(s.pool.QueryRow(ctx, `SELECT `+uploadColumns+` FROM upload_slots WHERE token = $1`, token))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("postgres: upload slot: %w", storage.ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("postgres: upload slot: %w", err)
	}
	return u, nil
}

// MarkUploaded implements storage.Uploads.
func (s *Store) MarkUploaded(ctx context.Context, token string, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE upload_slots SET uploaded = $2
		WHERE token = $1 AND uploaded IS NULL AND expires > $2`, token, now)
	if err != nil {
		return fmt.Errorf("postgres: mark uploaded: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: mark uploaded: no unused slot: %w", storage.ErrNotFound)
	}
	return nil
}

// UploadBytes implements storage.Uploads.
func (s *Store) UploadBytes(ctx context.Context, owner string, now time.Time) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, quotaBytesSQL, owner, now).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: upload bytes of %s: %w", owner, err)
	}
	return n, nil
}

// ExpiredUploads implements storage.Uploads.
func (s *Store) ExpiredUploads(ctx context.Context, now, uploadedBefore time.Time, max int) ([]storage.UploadSlot, error) {
	rows, _ := s.pool.Query(ctx, `
		SELECT `+uploadColumns+` FROM upload_slots
		WHERE (uploaded IS NULL AND expires <= $1) OR uploaded < $2
		ORDER BY token LIMIT $3`, now, nullTime(uploadedBefore), max)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storage.UploadSlot, error) { return scanUpload(r) })
	if err != nil {
		return nil, fmt.Errorf("postgres: expired uploads: %w", err)
	}
	if out == nil {
		out = []storage.UploadSlot{}
	}
	return out, nil
}

// DeleteUploadSlot implements storage.Uploads.
func (s *Store) DeleteUploadSlot(ctx context.Context, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM upload_slots WHERE token = $1`, token); err != nil {
		return fmt.Errorf("postgres: delete upload slot: %w", err)
	}
	return nil
}
