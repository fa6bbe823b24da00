package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/xmppd/xmppd/storage"
)

// busyTimeout is how long a writer waits for another connection or process
// (xmppctl beside a running server) to release the write lock.
const busyTimeout = 5 * time.Second

// Store is a storage.Store in one SQLite database file.
type Store struct {
	db    *sql.DB
	stmts stmts
	// writer holds this process's turn to write (writer.go).
	writer chan struct{}
	// offline holds the messages waiting to be stored together
	// (StoreOffline).
	offline offlineBatch
	// watches are the goroutines of WatchGroups; Close ends them.
	watches storage.Watches
	// now, if set (by tests), is the clock of PEPItem.Published, so that
	// they can give every item one instant.
	now func() time.Time
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database at path and applies any
// pending migrations. Several processes may open the same file at once.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	// A file: URI, so that a path containing '?' or '#' is not taken for
	// parameters. Every pooled connection gets the same settings.
	// _txlock=immediate takes the write lock at BEGIN, where busy_timeout can
	// wait for it, rather than failing with SQLITE_BUSY when a read
	// transaction later tries to write.
	q := url.Values{}
	q.Set("_busy_timeout", strconv.FormatInt(busyTimeout.Milliseconds(), 10))
	q.Set("_foreign_keys", "1")
	q.Set("_txlock", "immediate")
	// FULL (SQLite's usual default, set so as not to depend on it) syncs the
	// WAL at every commit: what StoreOffline promises.
	q.Set("_pragma", "synchronous(FULL)")
	dsn := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs), OmitHost: true, RawQuery: q.Encode()}).String()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := enableWAL(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	return &Store{db: db, stmts: stmts{db: db}, writer: make(chan struct{}, 1)}, nil
}

// enableWAL puts the file in WAL mode, which lets readers run beside a writer.
// The mode is stored in the file, so this only changes anything the first
// time. Switching needs an exclusive lock and, unlike other statements, fails
// with SQLITE_BUSY at once rather than honouring busy_timeout (two processes
// creating the file together), so retry for as long as busy_timeout would wait.
func enableWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	for {
		var mode string
		err := db.QueryRowContext(ctx, `PRAGMA journal_mode = WAL`).Scan(&mode)
		if err == nil {
			if !strings.EqualFold(mode, "wal") {
				return fmt.Errorf("journal_mode is %s, want wal", mode)
			}
			return nil
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return fmt.Errorf("enable WAL: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Close ends the watches started by WatchGroups and closes the database.
func (s *Store) Close() error {
	s.watches.Close()
	s.stmts.close()
	return s.db.Close()
}

// CreateUser implements storage.Users.
func (s *Store) CreateUser(ctx context.Context, jid string, c storage.Credentials) error {
	_, err := s.exec(ctx, `
		INSERT INTO users (jid, salt, iterations,
			sha1_stored_key, sha1_server_key, sha256_stored_key, sha256_server_key)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		jid, c.Salt, c.Iterations, c.SHA1.StoredKey, c.SHA1.ServerKey, c.SHA256.StoredKey, c.SHA256.ServerKey)
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create user %s: %w", jid, storage.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create user %s: %w", jid, err)
	}
	return nil
}

// SetCredentials implements storage.Users.
func (s *Store) SetCredentials(ctx context.Context, jid string, c storage.Credentials) error {
	res, err := s.exec(ctx, `
		UPDATE users SET salt = ?, iterations = ?,
			sha1_stored_key = ?, sha1_server_key = ?, sha256_stored_key = ?, sha256_server_key = ?
		WHERE jid = ?`,
		c.Salt, c.Iterations, c.SHA1.StoredKey, c.SHA1.ServerKey, c.SHA256.StoredKey, c.SHA256.ServerKey, jid)
	return oneRow(res, err, "set credentials", jid)
}

// Credentials implements storage.Users.
func (s *Store) Credentials(ctx context.Context, jid string) (storage.Credentials, error) {
	var c storage.Credentials
	err := s.queryRow(ctx, `
		SELECT salt, iterations, sha1_stored_key, sha1_server_key, sha256_stored_key, sha256_server_key
		FROM users WHERE jid = ?`, jid).
		Scan(&c.Salt, &c.Iterations, &c.SHA1.StoredKey, &c.SHA1.ServerKey, &c.SHA256.StoredKey, &c.SHA256.ServerKey)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Credentials{}, fmt.Errorf("sqlite: credentials %s: %w", jid, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Credentials{}, fmt.Errorf("sqlite: credentials %s: %w", jid, err)
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
	tx, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: delete user %s: %w", jid, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM users WHERE jid = ?`, jid)
	if err := oneRow(res, err, "delete user", jid); err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM roster_items WHERE owner = ?`,
		`DELETE FROM offline_messages WHERE owner = ?`,
		`DELETE FROM archive_messages WHERE owner = ?`,
		`DELETE FROM archive_prefs WHERE owner = ?`,
		`DELETE FROM push_registrations WHERE owner = ?`,
		`DELETE FROM block_items WHERE owner = ?`,
		`DELETE FROM upload_slots WHERE owner = ?`,
		`DELETE FROM xml_docs WHERE owner = ?`,
		// Their items go with them (ON DELETE CASCADE).
		`DELETE FROM pep_nodes WHERE owner = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, jid); err != nil {
			return fmt.Errorf("sqlite: delete user %s: %w", jid, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete user %s: %w", jid, err)
	}
	return nil
}

// ListUsers implements storage.Users; the order is byte order (BINARY collation).
func (s *Store) ListUsers(ctx context.Context) ([]string, error) {
	rows, err := s.query(ctx, `SELECT jid FROM users ORDER BY jid`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	defer rows.Close()
	jids := []string{}
	for rows.Next() {
		var jid string
		if err := rows.Scan(&jid); err != nil {
			return nil, fmt.Errorf("sqlite: list users: %w", err)
		}
		jids = append(jids, jid)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return jids, nil
}

// oneRow turns the result of an UPDATE or DELETE by primary key into nil,
// ErrNotFound, or the error.
func oneRow(res sql.Result, err error, op, jid string) error {
	if err != nil {
		return fmt.Errorf("sqlite: %s %s: %w", op, jid, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: %s %s: %w", op, jid, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: %s %s: %w", op, jid, storage.ErrNotFound)
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}

func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}
