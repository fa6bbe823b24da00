package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/xmppd/xmppd/storage"
)

// Migrations are numbered files, as storage.LoadMigrations reads them.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrate applies every migration not yet recorded in schema_migrations, each
// in its own transaction. Transactions begin IMMEDIATE (see Open), so a second
// process migrating the same file waits for the first and then finds the work
// done.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := storage.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := apply(ctx, db, m); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, m storage.Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)`); err != nil {
		return err
	}
	var applied bool
	if err := tx.QueryRowContext(ctx,
		`SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, m.Version).Scan(&applied); err != nil {
		return err
	}
	if applied {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version) VALUES (?)`, m.Version); err != nil {
		return err
	}
	return tx.Commit()
}
