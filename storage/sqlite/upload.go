package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// quotaBytesSQL sums what counts against an account's upload quota at a
// time: ?1 is the owner, ?2 the time in Unix microseconds.
const quotaBytesSQL = `
	SELECT coalesce(sum(size), 0) FROM upload_slots
	WHERE owner = ?1 AND (uploaded IS NOT NULL OR expires > ?2)`

// PutUploadSlot implements storage.Uploads. The transaction takes the write
// lock at BEGIN (see Open), so the sum and the insert see the same rows:
// the quota is exact.
func (s *Store) PutUploadSlot(ctx context.Context, u storage.UploadSlot, quota int64, now time.Time) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: put upload slot of %s: %w", u.Owner, err)
	}
	defer tx.Rollback()
	if quota > 0 {
		var used int64
		if err := tx.QueryRowContext(ctx, quotaBytesSQL, u.Owner, now.UnixMicro()).Scan(&used); err != nil {
			return fmt.Errorf("sqlite: put upload slot of %s: %w", u.Owner, err)
		}
		if used+u.Size > quota {
			return fmt.Errorf("sqlite: put upload slot of %s: %d bytes stored or reserved: %w", u.Owner, used, storage.ErrLimit)
		}
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO upload_slots (token, owner, filename, size, content_type, created, expires, uploaded)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.Token, u.Owner, u.Filename, u.Size, u.ContentType, u.Created.UnixMicro(), u.Expires.UnixMicro(), micros(u.Uploaded))
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: put upload slot of %s: %w", u.Owner, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: put upload slot of %s: %w", u.Owner, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: put upload slot of %s: %w", u.Owner, err)
	}
	return nil
}

// micros is t in Unix microseconds, or NULL for the zero time.
func micros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

const uploadColumns = `token, owner, filename, size, content_type, created, expires, uploaded`

func scanUpload(scan func(...any) error) (storage.UploadSlot, error) {
	var u storage.UploadSlot
	var created, expires int64
	var uploaded sql.NullInt64
	if err := scan(&u.Token, &u.Owner, &u.Filename, &u.Size, &u.ContentType, &created, &expires, &uploaded); err != nil {
		return u, err
	}
	u.Created, u.Expires = time.UnixMicro(created).UTC(), time.UnixMicro(expires).UTC()
	if uploaded.Valid {
		u.Uploaded = time.UnixMicro(uploaded.Int64).UTC()
	}
	return u, nil
}

// UploadSlot implements storage.Uploads.
func (s *Store) UploadSlot(ctx context.Context, token string) (storage.UploadSlot, error) {
	u, err := scanUpload(s.queryRow(ctx, `SELECT `+uploadColumns+` FROM upload_slots WHERE token = ?`, token).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("sqlite: upload slot: %w", storage.ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("sqlite: upload slot: %w", err)
	}
	return u, nil
}

// MarkUploaded implements storage.Uploads.
func (s *Store) MarkUploaded(ctx context.Context, token string, now time.Time) error {
	res, err := s.exec(ctx, `
		UPDATE upload_slots SET uploaded = ?2
		WHERE token = ?1 AND uploaded IS NULL AND expires > ?2`, token, now.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlite: mark uploaded: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("sqlite: mark uploaded: no unused slot: %w", storage.ErrNotFound)
	}
	return nil
}

// UploadBytes implements storage.Uploads.
func (s *Store) UploadBytes(ctx context.Context, owner string, now time.Time) (int64, error) {
	var n int64
	if err := s.queryRow(ctx, quotaBytesSQL, owner, now.UnixMicro()).Scan(&n); err != nil {
		return 0, fmt.Errorf("sqlite: upload bytes of %s: %w", owner, err)
	}
	return n, nil
}

// ExpiredUploads implements storage.Uploads.
func (s *Store) ExpiredUploads(ctx context.Context, now, uploadedBefore time.Time, max int) ([]storage.UploadSlot, error) {
	before := int64(-1 << 63)
	if !uploadedBefore.IsZero() {
		before = uploadedBefore.UnixMicro()
	}
	rows, err := s.query(ctx, `
		SELECT `+uploadColumns+` FROM upload_slots
		WHERE (uploaded IS NULL AND expires <= ?1) OR uploaded < ?2
		ORDER BY token LIMIT ?3`, now.UnixMicro(), before, max)
	if err != nil {
		return nil, fmt.Errorf("sqlite: expired uploads: %w", err)
	}
	defer rows.Close()
	out := []storage.UploadSlot{}
	for rows.Next() {
		u, err := scanUpload(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("sqlite: expired uploads: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: expired uploads: %w", err)
	}
	return out, nil
}

// DeleteUploadSlot implements storage.Uploads.
func (s *Store) DeleteUploadSlot(ctx context.Context, token string) error {
	if _, err := s.exec(ctx, `DELETE FROM upload_slots WHERE token = ?`, token); err != nil {
		return fmt.Errorf("sqlite: delete upload slot: %w", err)
	}
	return nil
}
