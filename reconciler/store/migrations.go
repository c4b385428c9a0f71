package store

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
)

// Migration is one step of a store's schema, read from a file named
// NNNN_name.sql. Every implementation numbers its steps alike, so that
// version N means the same record on each.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// LoadMigrations reads the migrations at the root of fsys, sorted by
// version. It refuses a file not named NNNN_name.sql and versions that do
// not run 1, 2, 3, ... without a gap: a misnamed migration would otherwise
// be skipped without a word.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []Migration
	for _, e := range entries { // ReadDir sorts by name, so by version
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("read migrations: %q is not named NNNN_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if want := len(out) + 1; version != want {
			return nil, fmt.Errorf("read migrations: %s has version %d, want %d", e.Name(), version, want)
		}
		text, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migrations: %w", err)
		}
		out = append(out, Migration{Version: version, Name: m[2], SQL: string(text)})
	}
	if len(out) == 0 {
		return nil, errors.New("read migrations: none found")
	}
	return out, nil
}
