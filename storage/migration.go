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
// 0001_users.sql, 0002_…, returned in order. The numbers must increase,
// without duplicates, and start at 1; a gap is allowed, so that work on
// separate branches can reserve numbers (the push registrations' 0009 was
// written before the archive's 0008 landed). Each migration is recorded
// by its number, so one that fills a gap later is still applied. Once
// released a file is never edited, only followed by a new one.
func LoadMigrations(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by name
	if err != nil {
		return nil, err
	}
	ms := make([]Migration, 0, len(entries))
	last := 0
	for _, e := range entries {
		prefix, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(prefix)
		if !ok || err != nil || len(prefix) != 4 || v <= last || (last == 0 && v != 1) {
			return nil, fmt.Errorf("migration %s: want a name starting with a number above %04d", e.Name(), last)
		}
		last = v
		b, err := fs.ReadFile(fsys, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	return ms, nil
}
