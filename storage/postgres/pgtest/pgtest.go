package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDSN is the server that DSN uses when XMPPD_TEST_POSTGRES is unset.
const DefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// DSN returns a DSN for the Postgres server named by XMPPD_TEST_POSTGRES (or
// DefaultDSN) whose search_path is a schema created for this test alone and
// dropped, with everything in it, when the test ends. Register cleanups that
// close stores opened on it after calling DSN, so that they run first.
//
// If the server does not answer, the test is skipped, or fails when CI=true
// so that a broken CI database is not mistaken for a pass.
func DSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv("XMPPD_TEST_POSTGRES")
	if base == "" {
		base = DefaultDSN
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("pgtest: Postgres not reachable (CI=true): %v", err)
		}
		t.Skipf("pgtest: skipping, Postgres not reachable (set XMPPD_TEST_POSTGRES to a server's DSN): %v", err)
	}
	defer conn.Close(ctx)

	schema := "xmppd_t_" + hex.EncodeToString(randomBytes(8))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})
	return withSearchPath(base, schema)
}

// withSearchPath adds search_path=schema to a DSN in either of the forms pgx
// accepts; pgx sends parameters it does not know itself to the server as
// run-time parameters.
func withSearchPath(dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err == nil {
			q := u.Query()
			q.Set("search_path", schema)
			u.RawQuery = q.Encode()
			return u.String()
		}
	}
	return dsn + " search_path=" + schema // key=value form; schema needs no quoting
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return b
}
