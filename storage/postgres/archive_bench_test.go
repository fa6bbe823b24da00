package postgres

import (
	"testing"

	"github.com/xmppd/xmppd/storage/postgres/pgtest"
	"github.com/xmppd/xmppd/storage/storagetest"
)

// BenchmarkArchive measures pages of a 1,000,000-message archive (see
// storagetest.BenchArchive) in a private schema, dropped after; the seeding
// takes a while, and runs only when -bench selects it:
// go test -run x -bench Archive ./storage/postgres
func BenchmarkArchive(b *testing.B) {
	s := open(b, pgtest.DSN(b))
	storagetest.BenchArchive(b, s, func(b *testing.B) {
		// What autovacuum does after a million inserts (statistics, and
		// the visibility map that index-only scans need), without waiting
		// for it.
		if _, err := s.pool.Exec(b.Context(), `VACUUM ANALYZE archive_messages`); err != nil {
			b.Fatalf("VACUUM ANALYZE: %v", err)
		}
	})
}
