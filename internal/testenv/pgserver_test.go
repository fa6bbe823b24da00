package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestStartPostgres: what is committed before Stop is there after Start,
// the server refuses TCP while stopped and while socket-only, and the
// Unix socket works in socket-only mode.
func TestStartPostgres(t *testing.T) {
	p := StartPostgres(t)
	ctx := context.Background()
	query := func(dsn, sql string) (int, error) {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, err
		}
		defer conn.Close(ctx)
		var n int
		err = conn.QueryRow(ctx, sql).Scan(&n)
		return n, err
	}
	p.Exec(`CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)`)
	p.Stop()
	if _, err := query(p.DSN(), `SELECT 1`); err == nil {
		t.Fatal("a stopped server answered")
	}
	p.StartSocketOnly()
	if _, err := query(p.DSN(), `SELECT 1`); err == nil {
		t.Fatal("a socket-only server answered over TCP")
	}
	p.Exec(`INSERT INTO kept VALUES (2)`)
	p.Restart()
	n, err := query(p.DSN(), `SELECT sum(n)::int FROM kept`)
	if err != nil || n != 3 {
		t.Fatalf("after the restarts: sum %d, %v; want 3", n, err)
	}
}
