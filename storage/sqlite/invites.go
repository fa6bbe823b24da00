package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// CreateInvite implements storage.Invites.
func (s *Store) CreateInvite(ctx context.Context, hash []byte, expires time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO invites (hash, expires) VALUES (?, ?)`, hash, expires.UnixMicro())
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create invite: %w", storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create invite: %w", err)
	}
	return nil
}

// UseInvite implements storage.Invites: one DELETE, so that of two uses
// one removes the row and the other finds none.
func (s *Store) UseInvite(ctx context.Context, hash []byte, now time.Time) error {
	res, err := s.exec(ctx, `DELETE FROM invites WHERE hash = ? AND expires > ?`, hash, now.UnixMicro())
	if err != nil {
		return fmt.Errorf("sqlite: use invite: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("sqlite: use invite: %w", storage.ErrNotFound)
	}
	return nil
}

// DeleteExpiredInvites implements storage.Invites.
func (s *Store) DeleteExpiredInvites(ctx context.Context, now time.Time) (int, error) {
	res, err := s.exec(ctx, `DELETE FROM invites WHERE expires <= ?`, now.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired invites: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
