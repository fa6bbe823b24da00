package postgres

import (
	"context"
	"embed"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xmppd/xmppd/storage"
)

// Migrations are numbered files, as storage.LoadMigrations reads them.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLock is the first key of the advisory lock that serialises
// migrations; the second is a hash of the schema, so that deployments in
// different schemas of one database do not wait for each other.
const migrationLock int32 = 0x786d7070 // "xmpp"

// migrate applies every migration not yet recorded in schema_migrations, each
// in its own transaction. Every transaction first takes a transaction-scoped
// advisory lock, so that of several nodes starting at once one migrates and
// the others wait, then find the work done.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	ms, err := storage.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return apply(ctx, tx, m) }); err != nil {
			return fmt.Errorf("migration %s: %w", m.Name, err)
		}
	}
	return nil
}

func apply(ctx context.Context, tx pgx.Tx, m storage.Migration) error {
	if _, err := tx.Exec(ctx,
		`SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))`, migrationLock); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx,
		`CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY)`); err != nil {
		return err
	}
	var applied bool
	if err := tx.QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)`, m.Version).Scan(&applied); err != nil {
		return err
	}
	if applied {
		return nil
	}
	if _, err := tx.Exec(ctx, m.SQL); err != nil { // no arguments: simple protocol, several statements allowed
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.Version)
	return err
}
