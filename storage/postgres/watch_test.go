package postgres

import (
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/storagetest"
)

// The app changes groups with plain SQL on a connection of its own, with a
// search_path of its own: the triggers report every change with its group
// and JID.
func TestWatchPlainSQL(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	ctx := t.Context()
	ch, err := s.WatchGroups(ctx)
	if err != nil {
		t.Fatalf("WatchGroups: %v", err)
	}

	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := pgx.Identifier{cfg.RuntimeParams["search_path"]}.Sanitize()
	cfg.RuntimeParams["search_path"] = "pg_catalog" // nothing of xmppd's on the path
	app, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := app.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	await := func(want ...storage.GroupChange) {
		t.Helper()
		for _, w := range want {
			storagetest.AwaitChange(t, ch, w)
		}
	}
	const alice, bob, carol = "alice@example.com", "bob@example.com", "carol@example.com"

	exec(`INSERT INTO ` + schema + `.groups (id, kind, name) VALUES ('eng', 'team', 'Engineering')`)
	await(storage.GroupChange{Group: "eng"})
	exec(`INSERT INTO ` + schema + `.group_members (group_id, jid) VALUES ('eng', '` + alice + `'), ('eng', '` + bob + `')`)
	await(storage.GroupChange{Group: "eng", JID: alice}, storage.GroupChange{Group: "eng", JID: bob})
	exec(`UPDATE ` + schema + `.group_members SET jid = '` + carol + `' WHERE jid = '` + bob + `'`)
	await(storage.GroupChange{Group: "eng", JID: bob}, storage.GroupChange{Group: "eng", JID: carol})
	exec(`DELETE FROM ` + schema + `.group_members WHERE jid = '` + alice + `'`)
	await(storage.GroupChange{Group: "eng", JID: alice})
	exec(`UPDATE ` + schema + `.groups SET name = 'Eng' WHERE id = 'eng'`)
	await(storage.GroupChange{Group: "eng"})
	exec(`TRUNCATE ` + schema + `.group_members`)
	await(storage.GroupChange{}) // resynchronise
	exec(`DELETE FROM ` + schema + `.groups`)
	await(storage.GroupChange{Group: "eng"})

	// The plain SQL did what the Store sees.
	if _, err := s.Group(ctx, "eng"); err == nil {
		t.Error("group eng still there after DELETE")
	}
}

// NOTIFY is database-wide: a watch ignores changes in other schemas (other
// deployments or tests sharing the database).
func TestWatchOtherSchema(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	other := open(t, pgtest.DSN(t))
	ctx := t.Context()
	ch, err := s.WatchGroups(ctx)
	if err != nil {
		t.Fatalf("WatchGroups: %v", err)
	}
	if err := other.CreateGroup(ctx, storage.Group{ID: "elsewhere", Kind: storage.KindTeam, Name: "Elsewhere"}); err != nil {
		t.Fatal(err)
	}
	// Notifications arrive in commit order, so once the marker is here the
	// other schema's would have been too.
	if err := s.CreateGroup(ctx, storage.Group{ID: "marker", Kind: storage.KindTeam, Name: "Marker"}); err != nil {
		t.Fatal(err)
	}
	if seen := storagetest.AwaitChange(t, ch, storage.GroupChange{Group: "marker"}); len(seen) != 0 {
		t.Errorf("the watch reported changes of another schema: %+v", seen)
	}
}

// When the watch's connection is killed, the watch reconnects, reports
// GroupChange{} so that consumers resynchronise, and goes on reporting.
func TestWatchReconnects(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	ctx := t.Context()
	pids := make(chan uint32, 10)
	s.onListen = func(pid uint32) { pids <- pid }
	ch, err := s.WatchGroups(ctx)
	if err != nil {
		t.Fatalf("WatchGroups: %v", err)
	}
	first := <-pids // sent before WatchGroups returned
	var killed bool
	if err := s.pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(first)).Scan(&killed); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", first, killed, err)
	}
	storagetest.AwaitChange(t, ch, storage.GroupChange{})
	select {
	case second := <-pids:
		if second == first {
			t.Errorf("reconnected on the killed backend %d", first)
		}
	default:
		t.Error("resynchronise reported before listening again")
	}
	if err := s.CreateGroup(ctx, storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}); err != nil {
		t.Fatal(err)
	}
	storagetest.AwaitChange(t, ch, storage.GroupChange{Group: "eng"})
}

// Silence makes the watch ping the server; the timed-out wait must leave
// the connection usable, not make the watch reconnect.
func TestWatchHealthCheck(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	s.healthInterval = 20 * time.Millisecond
	ctx := t.Context()
	pids := make(chan uint32, 10)
	s.onListen = func(pid uint32) { pids <- pid }
	ch, err := s.WatchGroups(ctx)
	if err != nil {
		t.Fatalf("WatchGroups: %v", err)
	}
	<-pids
	time.Sleep(10 * s.healthInterval) // let several health checks pass: time itself is the condition
	if err := s.CreateGroup(ctx, storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}); err != nil {
		t.Fatal(err)
	}
	if seen := storagetest.AwaitChange(t, ch, storage.GroupChange{Group: "eng"}); len(seen) != 0 {
		t.Errorf("changes before the one made: %+v", seen)
	}
	if len(pids) != 0 {
		t.Error("the watch reconnected after health checks")
	}
}

// Closing the store ends its watches.
func TestWatchEndsOnClose(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	ch, err := s.WatchGroups(t.Context())
	if err != nil {
		t.Fatalf("WatchGroups: %v", err)
	}
	s.Close()
	storagetest.AwaitClosed(t, ch)
}

// The schema the watch's connection reports is where migrations put the
// tables and what the triggers send as TG_TABLE_SCHEMA.
func TestWatchSchemaMatchesTables(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	conn, schema, err := s.listen(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer closeConn(conn)
	rows, _ := s.pool.Query(t.Context(),
		`SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = $1 AND c.relname IN ('groups', 'group_members') ORDER BY 1`, schema)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tables, []string{"group_members", "groups"}) {
		t.Errorf("schema %q holds %q, want the group tables", schema, tables)
	}
}
