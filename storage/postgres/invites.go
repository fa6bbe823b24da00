package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/xmppd/xmppd/storage"
)

// CreateInvite implements storage.Invites.
func (s *Store) CreateInvite(ctx context.Context, hash []byte, expires time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO invites (hash, expires) VALUES ($1, $2)`, hash, expires)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == uniqueViolation {
		return fmt.Errorf("postgres: create invite: %w", storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create invite: %w", err)
	}
	return nil
}

// UseInvite implements storage.Invites: one DELETE, so that of two uses
// one removes the row and the other finds none.
func (s *Store) UseInvite(ctx context.Context, hash []byte, now time.Time) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM invites WHERE hash = $1 AND expires > $2`, hash, now)
	if err != nil {
		return fmt.Errorf("postgres: use invite: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: use invite: %w", storage.ErrNotFound)
	}
	return nil
}

// DeleteExpiredInvites implements storage.Invites.
func (s *Store) DeleteExpiredInvites(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM invites WHERE expires <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired invites: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
