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

// CreateAPIToken implements storage.APITokens.
func (s *Store) CreateAPIToken(ctx context.Context, name string, hash []byte, created time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_tokens (name, hash, created) VALUES ($1, $2, $3)`, name, hash, created)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == uniqueViolation {
		return fmt.Errorf("postgres: create API token %s: %w", name, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create API token %s: %w", name, err)
	}
	return nil
}

// scanAPIToken reads name, created, last_used.
func scanAPIToken(row pgx.Row) (storage.APIToken, error) {
	var t storage.APIToken
	var used *time.Time
	if err := row.Scan(&t.Name, &t.Created, &used); err != nil {
		return t, err
	}
	t.Created = t.Created.UTC()
	if used != nil {
		t.LastUsed = used.UTC()
	}
	return t, nil
}

// APITokenByHash implements storage.APITokens.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (storage.APIToken, error) {
	t, err := scanAPIToken(s.pool.QueryRow(ctx, `SELECT name, created, last_used FROM api_tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("postgres: API token: %w", storage.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("postgres: API token: %w", err)
	}
	return t, nil
}

// TouchAPIToken implements storage.APITokens.
func (s *Store) TouchAPIToken(ctx context.Context, name string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE api_tokens SET last_used = $1 WHERE name = $2`, at, name)
	if err != nil {
		return fmt.Errorf("postgres: touch API token %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: touch API token %s: %w", name, storage.ErrNotFound)
	}
	return nil
}

// ListAPITokens implements storage.APITokens.
func (s *Store) ListAPITokens(ctx context.Context) ([]storage.APIToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, created, last_used FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list API tokens: %w", err)
	}
	defer rows.Close()
	var list []storage.APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list API tokens: %w", err)
		}
		list = append(list, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list API tokens: %w", err)
	}
	return list, nil
}

// DeleteAPIToken implements storage.APITokens.
func (s *Store) DeleteAPIToken(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM api_tokens WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("postgres: delete API token %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: delete API token %s: %w", name, storage.ErrNotFound)
	}
	return nil
}
