package sqlite

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "xmppd.db"))
	}, func(t *testing.T, s storage.Store) storage.Store {
		return open(t, dbPath(t, s.(*Store)))
	})
}

// dbPath returns the file s has open.
func dbPath(t *testing.T, s *Store) string {
	t.Helper()
	var path string
	if err := s.db.QueryRowContext(t.Context(),
		`SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&path); err != nil {
		t.Fatal(err)
	}
	return path
}

func open(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "xmppd.db")
	c := storage.Credentials{Salt: []byte{1, 2}, Iterations: 4096,
		SHA1:   storage.SCRAMKeys{StoredKey: []byte{3}, ServerKey: []byte{4}},
		SHA256: storage.SCRAMKeys{StoredKey: []byte{5}, ServerKey: []byte{6}}}

	s, err := Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.CreateUser(ctx, "alice@example.com", c); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// A re-applied 0001 would fail (CREATE TABLE users exists) or, were it
	// idempotent, wipe nothing but add a row to schema_migrations.
	s = open(t, path)
	if _, err := s.Credentials(ctx, "alice@example.com"); err != nil {
		t.Fatalf("Credentials after reopen: %v", err)
	}
	ms, err := storage.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var n, maxV int
	if err := s.db.QueryRowContext(ctx,
		`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &maxV); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || maxV != len(ms) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", n, maxV, len(ms))
	}
}

func TestPragmas(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xmppd.db"))
	for pragma, want := range map[string]string{
		"journal_mode": "wal", "busy_timeout": fmt.Sprint(busyTimeout.Milliseconds()), "foreign_keys": "1",
		"synchronous": "2", // FULL
	} {
		var got string
		if err := s.db.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if !strings.EqualFold(got, want) {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

// An awkward path must name a file, not be taken for URI parameters.
func TestPathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a b?c#d%20e.db")
	open(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the path given: %v", err)
	}
}

// Two stores on one file, as xmppd and xmppctl are: concurrent opens both
// migrate safely, and writes from both succeed (WAL + busy_timeout).
func TestTwoStoresOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "xmppd.db")
	var stores [2]*Store
	var errs [2]error
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(ctx, path) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Open %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}

	const perStore = 50
	c := storage.Credentials{Salt: []byte{1}, Iterations: 1,
		SHA1:   storage.SCRAMKeys{StoredKey: []byte{2}, ServerKey: []byte{3}},
		SHA256: storage.SCRAMKeys{StoredKey: []byte{4}, ServerKey: []byte{5}}}
	writeErrs := make(chan error, 2*perStore)
	for i, s := range stores {
		wg.Go(func() {
			for j := range perStore {
				writeErrs <- s.CreateUser(ctx, fmt.Sprintf("u%d-%d@example.com", i, j), c)
			}
		})
	}
	wg.Wait()
	close(writeErrs)
	for err := range writeErrs {
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
	}
	for i, s := range stores {
		got, err := s.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2*perStore {
			t.Errorf("store %d sees %d users, want %d", i, len(got), 2*perStore)
		}
	}
}

func TestPEPOneInstant(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xmppd.db"))
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456000, time.UTC)
	s.now = func() time.Time { return at }
	storagetest.PEPOneInstant(t, s, at)
}
