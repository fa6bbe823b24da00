package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
)

// xmlDocLock is the advisory lock kind that serialises PutXMLDoc per
// account when it counts documents.
const xmlDocLock int32 = 0x786d6c64 // "xmld"

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

// PutXMLDoc implements storage.XMLDocs. With a count limit, the account's
// advisory lock keeps two transactions from both adding a document to an
// account one short of it.
func (s *Store) PutXMLDoc(ctx context.Context, owner, key string, data []byte, lim storage.XMLDocLimits) error {
	if lim.MaxBytes > 0 && len(data) > lim.MaxBytes {
		return fmt.Errorf("postgres: xml doc %s of %s: %d bytes: %w", key, owner, len(data), storage.ErrLimit)
	}
	if data == nil {
		data = []byte{}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if lim.MaxDocs > 0 {
			if err := lockOwner(ctx, tx, xmlDocLock, owner); err != nil {
				return err
			}
		}
		// xmax is 0 in a row the statement inserted, not in one it updated.
		var inserted bool
		if err := tx.QueryRow(ctx, `
			INSERT INTO xml_docs (owner, key, data) VALUES ($1, $2, $3)
			ON CONFLICT (owner, key) DO UPDATE SET data = excluded.data, updated_at = now()
			RETURNING xmax = 0`, owner, key, data).Scan(&inserted); err != nil {
			return err
		}
		if lim.MaxDocs > 0 && inserted {
			var n int
			if err := tx.QueryRow(ctx, `SELECT count(*) FROM xml_docs WHERE owner = $1`, owner).Scan(&n); err != nil {
				return err
			}
			if n > lim.MaxDocs {
				return fmt.Errorf("%d documents: %w", n, storage.ErrLimit)
			}
		}
		return nil
	})
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
