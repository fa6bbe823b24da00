package sqlite

import (
	"context"
	"crypto/rand"
	"fmt"
)

// Secret implements storage.Secrets: the first caller's random bytes are
// inserted, and whoever comes second reads what is there.
func (s *Store) Secret(ctx context.Context, name string, size int) ([]byte, error) {
	fresh := make([]byte, size)
	rand.Read(fresh)
	if _, err := s.exec(ctx, `INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, fresh); err != nil {
		return nil, fmt.Errorf("sqlite: secret %s: %w", name, err)
	}
	var v []byte
	if err := s.queryRow(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v); err != nil {
		return nil, fmt.Errorf("sqlite: secret %s: %w", name, err)
	}
	return v, nil
}
