package sqlite

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/xmppd/xmppd/storage"
)

// Messages stored before migration 0006 are counted when it runs, and the
// count is the file's, whichever process stored them.
func TestOfflineUsageMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xmppd.db")
	s := open(t, path)
	ctx := t.Context()
	var want storage.OfflineUsage
	for i := range 100 {
		data := bytes.Repeat([]byte{'m'}, i)
		if err := s.StoreOffline(ctx, fmt.Sprintf("u%d@example.com", i%7), data, storage.OfflineLimits{}); err != nil {
			t.Fatal(err)
		}
		want.Messages++
		want.Bytes += int64(i)
	}
	// Back to the schema before 0006, with the messages in it.
	if _, err := s.db.ExecContext(ctx, `
		DROP TRIGGER offline_usage_insert;
		DROP TRIGGER offline_usage_delete;
		DROP TRIGGER offline_usage_update;
		DROP TABLE offline_usage;
		DELETE FROM schema_migrations WHERE version = 6`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	u, err := s.OfflineUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u != want {
		t.Errorf("OfflineUsage after migrating = %+v, want %+v", u, want)
	}
	// A second process on the file sees the same total and is refused by
	// what the first stored.
	other := open(t, path)
	err = other.StoreOffline(ctx, "alice@example.com", []byte("x"), storage.OfflineLimits{TotalBytes: want.Bytes})
	if !errors.Is(err, storage.ErrTotalLimit) {
		t.Errorf("StoreOffline past a total the other process filled: err = %v, want ErrTotalLimit", err)
	}
}

// Many messages stored at once share commits (group commit), in the order
// they came, none fails for waiting (SQLITE_BUSY), and the per-account
// limit stays exact within a shared transaction.
func TestOfflineGroupCommit(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "xmppd.db"))
	ctx := t.Context()
	const n, limit = 400, 150
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := "busy@example.com"
			if i%2 == 1 {
				owner = fmt.Sprintf("u%d@example.com", i)
			}
			errs <- s.StoreOffline(ctx, owner, []byte(fmt.Sprintf("m%d", i)), storage.OfflineLimits{PerAccount: limit})
		}()
	}
	wg.Wait()
	close(errs)
	refused := 0
	for err := range errs {
		switch {
		case errors.Is(err, storage.ErrLimit):
			refused++
		case err != nil:
			t.Fatalf("store: %v", err)
		}
	}
	if refused != n/2-limit {
		t.Errorf("%d refused for the limit, want %d", refused, n/2-limit)
	}
	msgs, err := s.OfflineMessages(ctx, "busy@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != limit {
		t.Errorf("%d stored for the busy account, want %d", len(msgs), limit)
	}
	u, err := s.OfflineUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.Messages != limit+n/2 {
		t.Errorf("%d messages stored in all, want %d", u.Messages, limit+n/2)
	}
}
