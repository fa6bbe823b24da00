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

// PutXMLDoc implements storage.XMLDocs. The transaction takes the write
// lock at BEGIN (see Open), so the count after the write is exact: the
// limit holds under concurrent puts.
func (s *Store) PutXMLDoc(ctx context.Context, owner, key string, data []byte, lim storage.XMLDocLimits) error {
	if lim.MaxBytes > 0 && len(data) > lim.MaxBytes {
		return fmt.Errorf("sqlite: xml doc %s of %s: %d bytes: %w", key, owner, len(data), storage.ErrLimit)
	}
	if data == nil {
		data = []byte{}
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: put xml doc %s of %s: %w", key, owner, err)
	}
	defer tx.Rollback()
	var existed bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM xml_docs WHERE owner = ? AND key = ?)`, owner, key).Scan(&existed); err != nil {
		return fmt.Errorf("sqlite: put xml doc %s of %s: %w", key, owner, err)
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO xml_docs (owner, key, data) VALUES (?, ?, ?)
		ON CONFLICT (owner, key) DO UPDATE SET data = excluded.data,
			updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`, owner, key, data); err != nil {
		return fmt.Errorf("sqlite: put xml doc %s of %s: %w", key, owner, err)
	}
	if lim.MaxDocs > 0 && !existed {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM xml_docs WHERE owner = ?`, owner).Scan(&n); err != nil {
			return fmt.Errorf("sqlite: put xml doc %s of %s: %w", key, owner, err)
		}
		if n > lim.MaxDocs {
			return fmt.Errorf("sqlite: put xml doc %s of %s: %d documents: %w", key, owner, n, storage.ErrLimit)
		}
	}
	if err := tx.Commit(); err != nil {
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
