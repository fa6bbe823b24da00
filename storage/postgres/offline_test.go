package postgres

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/storage/postgres/pgtest"
)

// Two nodes on one database share the total: what one stored counts for the
// other, and the switch from the shared lock to the exclusive one keeps the
// limit exact once the total comes within nearMargin of it.
func TestOfflineTotalAcrossNodes(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := open(t, dsn), open(t, dsn)
	ctx := t.Context()
	const mib = 1 << 20
	lim := storage.OfflineLimits{TotalBytes: 20 * mib} // nearMargin: 16 MiB
	big := bytes.Repeat([]byte{'x'}, 3*mib)

	// 3 MiB of 20: far from the limit, under the shared lock.
	if err := a.StoreOffline(ctx, "alice@example.com", big, lim); err != nil {
		t.Fatal(err)
	}
	if a.offlineNear.Load() {
		t.Errorf("node a took 3 of 20 MiB for near the limit")
	}
	// Node b finds 6 of 20 MiB near it (within 16 MiB), and stores again
	// under the exclusive lock.
	if err := b.StoreOffline(ctx, "bob@example.com", big, lim); err != nil {
		t.Fatal(err)
	}
	if !b.offlineNear.Load() {
		t.Errorf("node b took 6 of 20 MiB for far from the limit")
	}
	for i := range 4 { // 6 + 4×3 = 18 MiB
		if err := a.StoreOffline(ctx, fmt.Sprintf("u%d@example.com", i), big, lim); err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
	// 2 MiB left: b's next 3 MiB does not fit, 2 MiB exactly does.
	err := b.StoreOffline(ctx, "carol@example.com", big, lim)
	if !errors.Is(err, storage.ErrTotalLimit) {
		t.Fatalf("node b over the total that node a filled: err = %v, want ErrTotalLimit", err)
	}
	if err := b.StoreOffline(ctx, "carol@example.com", big[:2*mib], lim); err != nil {
		t.Fatalf("node b filling the total exactly: %v", err)
	}
	u, err := a.OfflineUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (storage.OfflineUsage{Messages: 7, Bytes: 20 * mib}); u != want {
		t.Errorf("OfflineUsage = %+v, want %+v", u, want)
	}
	// TRUNCATE, an operator's way to empty the queues, empties the count.
	if _, err := a.pool.Exec(ctx, `TRUNCATE offline_messages`); err != nil {
		t.Fatal(err)
	}
	if u, err := b.OfflineUsage(ctx); err != nil || u != (storage.OfflineUsage{}) {
		t.Errorf("OfflineUsage after TRUNCATE = %+v, %v; want none", u, err)
	}
	if err := b.StoreOffline(ctx, "carol@example.com", big, lim); err != nil {
		t.Fatalf("store after TRUNCATE: %v", err)
	}
	if b.offlineNear.Load() {
		t.Errorf("node b still takes 3 of 20 MiB for near the limit")
	}
}

// Far from the limit, stores for different accounts run side by side (no
// deadlock between the owner locks, the shared total lock and the counter
// rows) and every one is counted.
func TestOfflineTotalConcurrentFar(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	ctx := t.Context()
	lim := storage.OfflineLimits{PerAccount: 100, TotalBytes: 1 << 30}
	const workers, each = 8, 25
	var stored atomic.Int64
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			for i := range each {
				data := fmt.Appendf(nil, "<message id='%d-%d'/>", w, i)
				if err := s.StoreOffline(ctx, fmt.Sprintf("u%d@example.com", (w*each+i)%37), data, lim); err != nil {
					errs <- err
					return
				}
				stored.Add(int64(len(data)))
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.OfflineUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (storage.OfflineUsage{Messages: workers * each, Bytes: stored.Load()}); u != want {
		t.Errorf("OfflineUsage = %+v, want %+v", u, want)
	}
	if s.offlineNear.Load() {
		t.Errorf("a few KiB of 1 GiB taken for near the limit")
	}
}

// Messages stored before migration 0006 are counted when it runs.
func TestOfflineUsageMigration(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
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
	if _, err := s.pool.Exec(ctx, `
		DROP FUNCTION offline_usage_insert, offline_usage_delete, offline_usage_update, offline_usage_truncate CASCADE;
		DROP TABLE offline_usage;
		DELETE FROM schema_migrations WHERE version = 6`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, dsn)
	u, err := s.OfflineUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u != want {
		t.Errorf("OfflineUsage after migrating = %+v, want %+v", u, want)
	}
	checkMigrations(t, s)
}

// BenchmarkStoreOffline stores messages for many accounts from parallel
// goroutines, as busy nodes do, with and without the total limit.
func BenchmarkStoreOffline(b *testing.B) {
	for _, bc := range []struct {
		name string
		lim  storage.OfflineLimits
	}{
		{"PerAccount", storage.OfflineLimits{PerAccount: 1 << 20}},
		{"Total", storage.OfflineLimits{PerAccount: 1 << 20, TotalBytes: 1 << 40}},
		{"TotalNear", storage.OfflineLimits{PerAccount: 1 << 20, TotalBytes: 1 << 24}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := open(b, pgtest.DSN(b))
			data := bytes.Repeat([]byte{'x'}, 400)
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					owner := fmt.Sprintf("u%d@example.com", n.Add(1)%1000)
					if err := s.StoreOffline(b.Context(), owner, data, bc.lim); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
