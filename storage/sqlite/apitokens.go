package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/xmppd/xmppd/storage"
)

// CreateAPIToken implements storage.APITokens.
func (s *Store) CreateAPIToken(ctx context.Context, name string, hash []byte, created time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO api_tokens (name, hash, created) VALUES (?, ?, ?)`, name, hash, created.UnixMicro())
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create API token %s: %w", name, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create API token %s: %w", name, err)
	}
	return nil
}

// scanAPIToken reads name, created, last_used.
func scanAPIToken(row interface{ Scan(...any) error }) (storage.APIToken, error) {
	var t storage.APIToken
	var created int64
	var used sql.NullInt64
	if err := row.Scan(&t.Name, &created, &used); err != nil {
		return t, err
	}
	t.Created = time.UnixMicro(created).UTC()
	if used.Valid {
		t.LastUsed = time.UnixMicro(used.Int64).UTC()
	}
	return t, nil
}

// APITokenByHash implements storage.APITokens.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (storage.APIToken, error) {
	t, err := scanAPIToken(s.queryRow(ctx, `SELECT name, created, last_used FROM api_tokens WHERE hash = ?`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("sqlite: API token: %w", storage.ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("sqlite: API token: %w", err)
	}
	return t, nil
}

// TouchAPIToken implements storage.APITokens.
func (s *Store) TouchAPIToken(ctx context.Context, name string, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE api_tokens SET last_used = ? WHERE name = ?`, at.UnixMicro(), name)
	if err != nil {
		return fmt.Errorf("sqlite: touch API token %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("sqlite: touch API token %s: %w", name, storage.ErrNotFound)
	}
	return nil
}

// ListAPITokens implements storage.APITokens.
func (s *Store) ListAPITokens(ctx context.Context) ([]storage.APIToken, error) {
	rows, err := s.query(ctx, `SELECT name, created, last_used FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list API tokens: %w", err)
	}
	defer rows.Close()
	var list []storage.APIToken
	for rows.Next() {
		t, err := scanAPIToken(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list API tokens: %w", err)
		}
		list = append(list, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list API tokens: %w", err)
	}
	return list, nil
}

// DeleteAPIToken implements storage.APITokens.
func (s *Store) DeleteAPIToken(ctx context.Context, name string) error {
	res, err := s.exec(ctx, `DELETE FROM api_tokens WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("sqlite: delete API token %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return fmt.Errorf("sqlite: delete API token %s: %w", name, storage.ErrNotFound)
	}
	return nil
}
