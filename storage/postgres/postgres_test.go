package postgres

import (
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, pgtest.DSN(t))
	}, func(t *testing.T, s storage.Store) storage.Store {
		return open(t, s.(*Store).pool.Config().ConnString())
	})
}

func open(t testing.TB, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The search_path in the DSN must reach the server: it is what keeps tests,
// and deployments sharing a database, apart.
func TestSearchPath(t *testing.T) {
	dsn := pgtest.DSN(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	want := cfg.RuntimeParams["search_path"]
	if want == "" {
		t.Fatalf("pgtest.DSN gave no search_path: %q", dsn)
	}
	s := open(t, dsn)
	var schema string
	if err := s.pool.QueryRow(t.Context(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if schema != want {
		t.Errorf("current_schema() = %q, want %q", schema, want)
	}
	var ns string
	if err := s.pool.QueryRow(t.Context(),
		`SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = 'users'::regclass`).Scan(&ns); err != nil {
		t.Fatal(err)
	}
	if ns != want {
		t.Errorf("users table is in schema %q, want %q", ns, want)
	}
}

// Several nodes starting at once: the advisory lock lets one migrate while the
// others wait, and all of them open.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	stores := make([]*Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { stores[i], errs[i] = Open(t.Context(), dsn) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	checkMigrations(t, stores[0])
}

func TestReopen(t *testing.T) {
	dsn := pgtest.DSN(t)
	c := storage.Credentials{Salt: []byte{1, 2}, Iterations: 4096,
		SHA1:   storage.SCRAMKeys{StoredKey: []byte{3}, ServerKey: []byte{4}},
		SHA256: storage.SCRAMKeys{StoredKey: []byte{5}, ServerKey: []byte{6}}}
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.CreateUser(t.Context(), "alice@example.com", c); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	s.Close()

	s = open(t, dsn)
	if _, err := s.Credentials(t.Context(), "alice@example.com"); err != nil {
		t.Fatalf("Credentials after reopen: %v", err)
	}
	checkMigrations(t, s)
}

// checkMigrations checks that every migration was recorded exactly once.
func checkMigrations(t *testing.T, s *Store) {
	t.Helper()
	ms, err := storage.LoadMigrations(migrationFiles, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var count, maxV int
	if err := s.pool.QueryRow(t.Context(),
		`SELECT count(*), coalesce(max(version), 0) FROM schema_migrations`).Scan(&count, &maxV); err != nil {
		t.Fatal(err)
	}
	if count != len(ms) || maxV != len(ms) {
		t.Errorf("schema_migrations has %d rows up to version %d, want %d", count, maxV, len(ms))
	}
}

func TestPEPOneInstant(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	at := time.Date(2025, 6, 7, 8, 9, 10, 123456000, time.UTC)
	s.now = func() time.Time { return at }
	storagetest.PEPOneInstant(t, s, at)
}
