package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/xmppd/xmppd/storage/storagetest"
)

// BenchmarkArchive measures pages of a 1,000,000-message archive (see
// storagetest.BenchArchive); the seeding takes a while, and runs only when
// -bench selects it: go test -run x -bench Archive ./storage/sqlite
func BenchmarkArchive(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "xmppd.db"))
	storagetest.BenchArchive(b, s, nil)
}
