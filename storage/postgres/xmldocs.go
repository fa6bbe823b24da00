package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
)

// XMLDoc implements storage.XMLDocs.
func (s *Store) XMLDoc(ctx context.Context, owner, key string) ([]byte, error) {
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM xml_docs WHERE owner = $1 AND key = $2`, owner, key).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: xml doc %s of %s: %w", key, owner, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: xml doc %s of %s: %w", key, owner, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// PutXMLDoc implements storage.XMLDocs. The limit is on one document, so
// it is checked before the write and needs no lock.
func (s *Store) PutXMLDoc(ctx context.Context, owner, key string, data []byte, maxBytes int) error {
	if maxBytes > 0 && len(data) > maxBytes {
		return fmt.Errorf("postgres: xml doc %s of %s: %d bytes: %w", key, owner, len(data), storage.ErrLimit)
	}
	if data == nil {
		data = []byte{}
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO xml_docs (owner, key, data) VALUES ($1, $2, $3)
		ON CONFLICT (owner, key) DO UPDATE SET data = excluded.data, updated_at = now()`, owner, key, data)
	if err != nil {
		return fmt.Errorf("postgres: put xml doc %s of %s: %w", key, owner, err)
	}
	return nil
}

// DeleteXMLDoc implements storage.XMLDocs.
func (s *Store) DeleteXMLDoc(ctx context.Context, owner, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM xml_docs WHERE owner = $1 AND key = $2`, owner, key); err != nil {
		return fmt.Errorf("postgres: delete xml doc %s of %s: %w", key, owner, err)
	}
	return nil
}
