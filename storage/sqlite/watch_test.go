package sqlite

import (
	"database/sql"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/storagetest"
)

// The app changes groups with plain SQL on a database handle of its own: the
// triggers record every change and the watch reports it with its group and
// JID.
func TestWatchPlainSQL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xmppd.db")
	s := open(t, path)
	ctx := t.Context()
	ch, err := s.WatchGroups(ctx)
	if err != nil {
		t.Fatalf("WatchGroups: %v", err)
	}
	// What docs/teams.md tells the app to set.
	q := url.Values{"_pragma": {"foreign_keys(1)", "busy_timeout(5000)"}}
	app, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: filepath.ToSlash(path), OmitHost: true, RawQuery: q.Encode()}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	exec := func(query string) {
		t.Helper()
		if _, err := app.ExecContext(ctx, query); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	await := func(want ...storage.GroupChange) {
		t.Helper()
		for _, w := range want {
			storagetest.AwaitChange(t, ch, w)
		}
	}
	const alice, bob, carol = "alice@example.com", "bob@example.com", "carol@example.com"

	exec(`INSERT INTO groups (id, kind, name) VALUES ('eng', 'team', 'Engineering')`)
	await(storage.GroupChange{Group: "eng"})
	exec(`INSERT INTO group_members (group_id, jid) VALUES ('eng', '` + alice + `'), ('eng', '` + bob + `')`)
	await(storage.GroupChange{Group: "eng", JID: alice}, storage.GroupChange{Group: "eng", JID: bob})
	exec(`UPDATE group_members SET jid = '` + carol + `' WHERE jid = '` + bob + `'`)
	await(storage.GroupChange{Group: "eng", JID: bob}, storage.GroupChange{Group: "eng", JID: carol})
	exec(`UPDATE groups SET name = 'Eng' WHERE id = 'eng'`)
	await(storage.GroupChange{Group: "eng"})
	// The cascade to the members is reported too.
	exec(`DELETE FROM groups WHERE id = 'eng'`)
	await(storage.GroupChange{Group: "eng", JID: alice}, storage.GroupChange{Group: "eng"})
}

// A watch that falls behind the pruning of group_changes finds a gap and
// reports GroupChange{}: resynchronise.
func TestWatchGap(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xmppd.db"))
	ctx := t.Context()
	if err := s.CreateGroup(ctx, storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}); err != nil {
		t.Fatal(err)
	}
	var last int64
	if err := s.db.QueryRowContext(ctx, `SELECT max(id) FROM group_changes`).Scan(&last); err != nil {
		t.Fatal(err)
	}
	for _, jid := range []string{"a@example.com", "b@example.com"} {
		if err := s.AddMember(ctx, "eng", jid); err != nil {
			t.Fatal(err)
		}
	}
	changes, next, err := s.changesAfter(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 || changes[0] != (storage.GroupChange{Group: "eng", JID: "a@example.com"}) || next != last+2 {
		t.Fatalf("changesAfter(%d) = %+v, %d; want a's and b's, up to %d", last, changes, next, last+2)
	}
	// Pruned before it was read.
	if _, err := s.db.ExecContext(ctx, `DELETE FROM group_changes WHERE id = ?`, last+1); err != nil {
		t.Fatal(err)
	}
	changes, _, err = s.changesAfter(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	want := []storage.GroupChange{{}, {Group: "eng", JID: "b@example.com"}}
	if !slices.Equal(changes, want) {
		t.Errorf("changesAfter a gap = %+v, want %+v", changes, want)
	}
}

// Pruning deletes the rows older than changeRetention, and only those.
func TestPruneChanges(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xmppd.db"))
	ctx := t.Context()
	if err := s.CreateGroup(ctx, storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE group_changes SET at = at - ? - 1`,
		int64(changeRetention/time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMember(ctx, "eng", "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := s.pruneChanges(ctx); err != nil {
		t.Fatalf("pruneChanges: %v", err)
	}
	changes, _, err := s.changesAfter(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The gap where the old row was is reported as a resynchronise.
	want := []storage.GroupChange{{}, {Group: "eng", JID: "a@example.com"}}
	if !slices.Equal(changes, want) {
		t.Errorf("after pruning, changes = %+v, want %+v", changes, want)
	}
}

// A watch starts after the last change recorded, even if group_changes has
// been pruned empty: no spurious resynchronise.
func TestWatchStartsAfterPrunedChanges(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xmppd.db"))
	ctx := t.Context()
	if err := s.CreateGroup(ctx, storage.Group{ID: "eng", Kind: storage.KindTeam, Name: "Engineering"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM group_changes`); err != nil {
		t.Fatal(err)
	}
	ch, err := s.WatchGroups(ctx)
	if err != nil {
		t.Fatalf("WatchGroups: %v", err)
	}
	if err := s.AddMember(ctx, "eng", "a@example.com"); err != nil {
		t.Fatal(err)
	}
	if seen := storagetest.AwaitChange(t, ch, storage.GroupChange{Group: "eng", JID: "a@example.com"}); len(seen) != 0 {
		t.Errorf("changes before the one made: %+v", seen)
	}
}

// Closing the store ends its watches.
func TestWatchEndsOnClose(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xmppd.db"))
	ch, err := s.WatchGroups(t.Context())
	if err != nil {
		t.Fatalf("WatchGroups: %v", err)
	}
	s.Close()
	storagetest.AwaitClosed(t, ch)
}
