package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/xmppd/xmppd/storage"
)

// XMLDoc implements storage.XMLDocs.
func (s *Store) XMLDoc(ctx context.Context, owner, key string) ([]byte, error) {
	var data []byte
	err := s.queryRow(ctx, `SELECT data FROM xml_docs WHERE owner = ? AND key = ?`, owner, key).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: xml doc %s of %s: %w", key, owner, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: xml doc %s of %s: %w", key, owner, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// PutXMLDoc implements storage.XMLDocs. The limit is on one document, so
// it is checked before the write and needs no transaction.
func (s *Store) PutXMLDoc(ctx context.Context, owner, key string, data []byte, maxBytes int) error {
	if maxBytes > 0 && len(data) > maxBytes {
		return fmt.Errorf("sqlite: xml doc %s of %s: %d bytes: %w", key, owner, len(data), storage.ErrLimit)
	}
	if data == nil {
		data = []byte{}
	}
	_, err := s.exec(ctx, `
		INSERT INTO xml_docs (owner, key, data) VALUES (?, ?, ?)
		ON CONFLICT (owner, key) DO UPDATE SET data = excluded.data,
			updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`, owner, key, data)
	if err != nil {
		return fmt.Errorf("sqlite: put xml doc %s of %s: %w", key, owner, err)
	}
	return nil
}

// DeleteXMLDoc implements storage.XMLDocs.
func (s *Store) DeleteXMLDoc(ctx context.Context, owner, key string) error {
	if _, err := s.exec(ctx, `DELETE FROM xml_docs WHERE owner = ? AND key = ?`, owner, key); err != nil {
		return fmt.Errorf("sqlite: delete xml doc %s of %s: %w", key, owner, err)
	}
	return nil
}
