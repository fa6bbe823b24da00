package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/xmppd/xmppd/storage"
)

// uniqueViolation is the SQLSTATE of a duplicate key.
const uniqueViolation = "23505"

// Store is a storage.Store in a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	// watches are the goroutines of WatchGroups; Close ends them.
	watches storage.Watches
	// healthInterval is how long a watch waits in silence before it pings
	// the server; tests shorten it.
	healthInterval time.Duration
	// onListen, if set (by tests), is called with the backend PID of every
	// connection a watch starts listening on.
	onListen func(pid uint32)
	// now, if set (by tests), is the clock of PEPItem.Published in place
	// of the database's, so that they can give every item one instant.
	now func() time.Time
	// offlineNear says that the last store found the offline total near its
	// limit, so the next one takes the exclusive lock at once (see
	// StoreOffline).
	offlineNear atomic.Bool
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database named by dsn (a postgres:// URL or
// key=value string, as pgx accepts) and applies any pending migrations.
// Several nodes may Open the same database at once.
//
// Tables live in the schema the connection's search_path selects; a
// search_path parameter in dsn (search_path=xmppd) is sent to the server as a
// run-time parameter and does that.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := checkSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return &Store{pool: pool, healthInterval: defaultHealthInterval}, nil
}

// checkSchema fails when no schema of the search path exists, naming it:
// otherwise the first migration fails with "no schema has been selected to
// create in", which names nothing. xmppd does not create the schema, since
// its name is the operator's choice, as are the rights on it.
func checkSchema(ctx context.Context, pool *pgxpool.Pool) error {
	var schema *string
	var path string
	if err := pool.QueryRow(ctx, `SELECT current_schema(), current_setting('search_path')`).Scan(&schema, &path); err != nil {
		return err
	}
	if schema != nil {
		return nil
	}
	return fmt.Errorf("the schema %s in the search_path does not exist: create it (CREATE SCHEMA name) or change search_path in storage.postgres_dsn", path)
}

// Close ends the watches started by WatchGroups and closes every
// connection, waiting for those in use to be released.
func (s *Store) Close() error {
	s.watches.Close()
	s.pool.Close()
	return nil
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(ctx context.Context, jid string, c storage.Credentials) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO users (jid, salt, iterations,
			sha1_stored_key, sha1_server_key, sha256_stored_key, sha256_server_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		jid, c.Salt, c.Iterations, c.SHA1.StoredKey, c.SHA1.ServerKey, c.SHA256.StoredKey, c.SHA256.ServerKey)
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == uniqueViolation {
		return fmt.Errorf("postgres: create user %s: %w", jid, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create user %s: %w", jid, err)
	}
	return nil
}

// SetCredentials implements storage.Users.
func (s *Store) SetCredentials(ctx context.Context, jid string, c storage.Credentials) error {
	tag, err := s.pool.Exec(ctx, `
		UPDATE users SET salt = $2, iterations = $3,
			sha1_stored_key = $4, sha1_server_key = $5, sha256_stored_key = $6, sha256_server_key = $7
		WHERE jid = $1`,
		jid, c.Salt, c.Iterations, c.SHA1.StoredKey, c.SHA1.ServerKey, c.SHA256.StoredKey, c.SHA256.ServerKey)
	return oneRow(tag, err, "set credentials", jid)
}

// Credentials implements storage.Users.
func (s *Store) Credentials(ctx context.Context, jid string) (storage.Credentials, error) {
	var c storage.Credentials
	err := s.pool.QueryRow(ctx, `
		SELECT salt, iterations, sha1_stored_key, sha1_server_key, sha256_stored_key, sha256_server_key
		FROM users WHERE jid = $1`, jid).
		Scan(&c.Salt, &c.Iterations, &c.SHA1.StoredKey, &c.SHA1.ServerKey, &c.SHA256.StoredKey, &c.SHA256.ServerKey)
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Credentials{}, fmt.Errorf("postgres: credentials %s: %w", jid, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Credentials{}, fmt.Errorf("postgres: credentials %s: %w", jid, err)
	}
	return c, nil
}

// DeleteUser implements storage.Users. The account's roster, offline
// messages, message archive, archiving preferences, push registrations,
// block list, upload slots, vCard and private XML storage (xml_docs), and
// PEP nodes with their items go with it, in the same transaction (the
// upload service's sweep deletes the files of slots that are gone); they
// have no foreign key to users, because accounts that sign in with the
// app's tokens have no row there. Group memberships stay: they belong to
// the app.
func (s *Store) DeleteUser(ctx context.Context, jid string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM users WHERE jid = $1`, jid)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return storage.ErrNotFound
		}
		for _, q := range []string{
			`DELETE FROM roster_items WHERE owner = $1`,
			`DELETE FROM offline_messages WHERE owner = $1`,
			`DELETE FROM archive_messages WHERE owner = $1`,
			`DELETE FROM archive_prefs WHERE owner = $1`,
			`DELETE FROM push_registrations WHERE owner = $1`,
			`DELETE FROM block_items WHERE owner = $1`,
			`DELETE FROM upload_slots WHERE owner = $1`,
			`DELETE FROM xml_docs WHERE owner = $1`,
			// Their items go with them (ON DELETE CASCADE).
			`DELETE FROM pep_nodes WHERE owner = $1`,
		} {
			if _, err := tx.Exec(ctx, q, jid); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: delete user %s: %w", jid, err)
	}
	return nil
}

// ListUsers implements storage.Users; the order is byte order (the jid column
// is COLLATE "C").
func (s *Store) ListUsers(ctx context.Context) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT jid FROM users ORDER BY jid`)
	jids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	if jids == nil {
		jids = []string{}
	}
	return jids, nil
}

// oneRow turns the result of an UPDATE or DELETE by primary key into nil,
// ErrNotFound, or the error.
func oneRow(tag pgconn.CommandTag, err error, op, jid string) error {
	if err != nil {
		return fmt.Errorf("postgres: %s %s: %w", op, jid, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("postgres: %s %s: %w", op, jid, storage.ErrNotFound)
	}
	return nil
}
