package storage

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// A Migration is one numbered schema change of a backend.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// LoadMigrations reads a backend's migrations from dir in fsys: files named
// 0001_users.sql, 0002_…, returned in order. The numbers must run 1, 2, 3…
// without gaps or duplicates. Once released a file is never edited, only
// followed by a new one.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by name
	if err != nil {
		return nil, err
	}
	ms := make([]Migration, 0, len(entries))
	for i, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want a name starting %04d_", e.Name(), i+1)
		}
		b, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	return ms, nil
}
