package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
)

// Secret implements storage.Secrets: the first node's random bytes are
// inserted, and every other node reads them. The read is a statement of its
// own: one statement's snapshot would not see a row that a concurrent
// insert, which made ON CONFLICT wait, committed meanwhile.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	fresh := make([]byte, size)
	rand.Read(fresh)
	if _, err := s.pool.Exec(ctx, `INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, fresh); err != nil {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
	}
	var v []byte
	if err := s.pool.QueryRow(ctx, `SELECT value FROM secrets WHERE name = $1`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("postgres: secret %s: %w", name, err)
	}
	return v, nil
}
