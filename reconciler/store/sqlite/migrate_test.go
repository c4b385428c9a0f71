package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"go.uber.org/goleak"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// raw opens the file behind the store's back, as an operator's sqlite3
// would.
func raw(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func schemaVersions(t *testing.T, path string) []int {
	t.Helper()
	rows, err := raw(t, path).Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func TestMigrationsAreAppliedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ms, err := loadMigrations(mustSub(embedded, "migrations"))
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	for range 3 {
		s, err := Open(context.Background(), path, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	got := schemaVersions(t, path)
	if len(got) != len(ms) || got[len(got)-1] != ms[len(ms)-1].Version {
		t.Errorf("schema_migrations holds %v, want 1 to %d once each", got, ms[len(ms)-1].Version)
	}
	if n := strings.Count(logs.String(), "applied state store migration"); n != len(ms) {
		t.Errorf("%d migrations logged over three opens, want %d:\n%s", n, len(ms), logs.String())
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := raw(t, path).Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'from_the_future', '2030-01-01T00:00:00Z')`); err != nil {
		t.Fatal(err)
	}

	s, err = Open(context.Background(), path)
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer database succeeded")
	}
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Errorf("error %q does not wrap ErrNewerSchema", err)
	}
	embeddedMigrations, merr := loadMigrations(mustSub(embedded, "migrations"))
	if merr != nil {
		t.Fatal(merr)
	}
	newest := fmt.Sprintf("up to %d", len(embeddedMigrations))
	for _, want := range []string{path, "version 9999", newest} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := schemaVersions(t, path); got[len(got)-1] != 9999 {
		t.Errorf("schema_migrations now %v", got)
	}
}

func TestFailedMigrationIsRolledBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	fsys := fstest.MapFS{
		"0001_first.sql":  {Data: []byte(`CREATE TABLE first (x INTEGER) STRICT;`)},
		"0002_second.sql": {Data: []byte(`CREATE TABLE second (x INTEGER) STRICT; INSERT INTO nowhere VALUES (1);`)},
	}
	openWith := func() error {
		ms, err := loadMigrations(fsys)
		if err != nil {
			t.Fatal(err)
		}
		s, err := open(context.Background(), path, ms, options{log: slog.New(slog.DiscardHandler)})
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := openWith(); err == nil || !strings.Contains(err.Error(), "apply migration 0002_second") {
		t.Fatalf("Open with a broken migration: %v", err)
	}
	if got := schemaVersions(t, path); len(got) != 1 || got[0] != 1 {
		t.Errorf("schema_migrations holds %v after a failed second migration, want [1]", got)
	}
	var n int
	if err := raw(t, path).QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'second'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the failed migration's table is there (count %d, %v)", n, err)
	}

	fsys["0002_second.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE second (x INTEGER) STRICT;`)}
	if err := openWith(); err != nil {
		t.Fatalf("Open with the fixed migration: %v", err)
	}
	if got := schemaVersions(t, path); len(got) != 2 {
		t.Errorf("schema_migrations holds %v, want [1 2]", got)
	}
}

func TestMisnamedMigrationsAreRefused(t *testing.T) {
	file := &fstest.MapFile{Data: []byte(`SELECT 1;`)}
	cases := []struct {
		name string
		fsys fstest.MapFS
		want string
	}{
		{"no migrations", fstest.MapFS{}, "none found"},
		{"a dash for the underscore", fstest.MapFS{"0001-initial.sql": file}, `"0001-initial.sql" is not named`},
		{"too few digits", fstest.MapFS{"01_initial.sql": file}, "not named NNNN_name.sql"},
		{"not SQL", fstest.MapFS{"0001_initial.sql": file, "README.md": file}, `"README.md" is not named`},
		{"a gap", fstest.MapFS{"0001_initial.sql": file, "0003_later.sql": file}, "0003_later.sql has version 3, want 2"},
		{"a version twice", fstest.MapFS{"0001_initial.sql": file, "0001_again.sql": file}, "has version 1, want 2"},
		{"not from 1", fstest.MapFS{"0002_initial.sql": file}, "has version 2, want 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := loadMigrations(c.fsys)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("loadMigrations = %v, want an error saying %q", err, c.want)
			}
		})
	}
}
