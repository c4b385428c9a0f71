package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

// schemaVersions reads schema_migrations behind the store's back.
func schemaVersions(t *testing.T, c *pgx.Conn) []int {
	t.Helper()
	rows, err := c.Query(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return got
}

func allVersions(t *testing.T) []int {
	t.Helper()
	ms, err := embeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, m := range ms {
		out = append(out, m.Version)
	}
	return out
}

func TestMigrationsAreAppliedOnce(t *testing.T) {
	t.Parallel()
	dsn := freshDatabase(t)
	var logs bytes.Buffer
	for range 3 {
		s, err := Open(context.Background(), dsn, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		s.Close()
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4}, schemaVersions(t, connect(t, dsn))); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
	if n := strings.Count(logs.String(), "applied state store migration"); n != 4 {
		t.Errorf("%d migrations logged over three opens, want 4:\n%s", n, logs.String())
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4}, allVersions(t)); diff != "" {
		t.Errorf("embedded migrations (-want +got):\n%s", diff)
	}
}

func TestConcurrentOpensOfAnEmptyDatabase(t *testing.T) {
	t.Parallel()
	dsn := freshDatabase(t)
	const replicas = 4
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		logs bytes.Buffer
	)
	log := slog.New(slog.NewTextHandler(&syncWriter{mu: &mu, w: &logs}, nil))
	for i := range replicas {
		wg.Go(func() {
			s, err := Open(context.Background(), dsn, WithLogger(log))
			if err != nil {
				t.Errorf("Open of replica %d: %v", i, err)
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	if diff := cmp.Diff([]int{1, 2, 3, 4}, schemaVersions(t, connect(t, dsn))); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
	if n := strings.Count(logs.String(), "applied state store migration"); n != 4 {
		t.Errorf("%d migrations applied by %d replicas, want 4 in all:\n%s", n, replicas, logs.String())
	}
}

type syncWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func TestNewerSchemaIsRefused(t *testing.T) {
	t.Parallel()
	dsn := freshDatabase(t)
	openStore(t, dsn).Close()
	c := connect(t, dsn)
	if _, err := c.Exec(context.Background(), `INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')`); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open of a newer database succeeded")
	}
	if !errors.Is(err, store.ErrNewerSchema) {
		t.Errorf("error %q does not wrap ErrNewerSchema", err)
	}
	db := dsn[strings.LastIndex(dsn, "/")+1:]
	db, _, _ = strings.Cut(db, "?")
	for _, want := range []string{db, "version 9999", fmt.Sprintf("up to %d", len(allVersions(t)))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if got := schemaVersions(t, c); got[len(got)-1] != 9999 {
		t.Errorf("schema_migrations now %v", got)
	}
}

func TestDatabaseOfVersion3MigratesKeepingItsRecords(t *testing.T) {
	t.Parallel()
	dsn := freshDatabase(t)
	ms, err := embeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	old, err := open(context.Background(), dsn, ms[:3])
	if err != nil {
		t.Fatalf("open at version 3: %v", err)
	}
	want, err := old.Update(context.Background(), "orders-db", func(r *store.Record) error {
		r.Generation = 3
		r.InFlight = &store.InFlight{Generation: 3, Revision: "abc", Spec: []byte(`{}`)}
		r.Keys = []store.WrappedKey{{Version: 1, Wrapped: []byte("w"), MasterVersion: 1, State: store.KeyCurrent}}
		return nil
	})
	old.Close()
	if err != nil {
		t.Fatalf("Update at version 3: %v", err)
	}
	c := connect(t, dsn)
	if diff := cmp.Diff([]int{1, 2, 3}, schemaVersions(t, c)); diff != "" {
		t.Fatalf("schema_migrations before (-want +got):\n%s", diff)
	}

	s := openStore(t, dsn)
	if diff := cmp.Diff([]int{1, 2, 3, 4}, schemaVersions(t, c)); diff != "" {
		t.Errorf("schema_migrations after (-want +got):\n%s", diff)
	}
	got, err := s.Get(context.Background(), "orders-db")
	if err != nil {
		t.Fatalf("Get after the migration: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record after the migration (-want +got):\n%s", diff)
	}
	l, err := s.Leader(context.Background())
	if err != nil {
		t.Fatalf("Leader: %v", err)
	}
	if diff := cmp.Diff(Leader{}, l); diff != "" {
		t.Errorf("Leader of a new leader table (-want +got):\n%s", diff)
	}
}

func TestFailedMigrationIsRolledBack(t *testing.T) {
	t.Parallel()
	dsn := freshDatabase(t)
	fsys := fstest.MapFS{
		"0001_first.sql":  {Data: []byte(`CREATE TABLE first (x integer);`)},
		"0002_second.sql": {Data: []byte(`CREATE TABLE second (x integer); INSERT INTO nowhere VALUES (1);`)},
	}
	openWith := func() error {
		ms, err := loadMigrations(fsys)
		if err != nil {
			t.Fatal(err)
		}
		s, err := open(context.Background(), dsn, ms)
		if err == nil {
			s.Close()
		}
		return err
	}
	if err := openWith(); err == nil || !strings.Contains(err.Error(), "apply migration 0002_second") {
		t.Fatalf("Open with a broken migration: %v", err)
	}
	c := connect(t, dsn)
	if diff := cmp.Diff([]int{1}, schemaVersions(t, c)); diff != "" {
		t.Errorf("schema_migrations after a failed second migration (-want +got):\n%s", diff)
	}
	var second bool
	if err := c.QueryRow(context.Background(), `SELECT to_regclass('second') IS NOT NULL`).Scan(&second); err != nil || second {
		t.Errorf("the failed migration's table is there (%v, %v)", second, err)
	}

	fsys["0002_second.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE second (x integer);`)}
	if err := openWith(); err != nil {
		t.Fatalf("Open with the fixed migration: %v", err)
	}
	if diff := cmp.Diff([]int{1, 2}, schemaVersions(t, c)); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
}

func TestMigratedDatabaseOpensWithoutCreate(t *testing.T) {
	// Once migrated, a role that may only read and write opens it.
	t.Parallel()
	dsn := freshDatabase(t)
	openStore(t, dsn).Close()
	role := "reconciler_rw_" + fmt.Sprintf("%x", randomBytes(4))
	c := connect(t, dsn)
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role,
	} {
		if _, err := c.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{"DROP OWNED BY " + role, "DROP ROLE " + role} {
			if _, err := c.Exec(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	s := openStore(t, u.String())
	if _, err := s.Update(context.Background(), "orders-db", func(r *store.Record) error { r.Generation = 1; return nil }); err != nil {
		t.Errorf("Update as %s: %v", role, err)
	}
	if _, err := s.Campaign(context.Background(), "replica-a", ""); err != nil {
		t.Errorf("Campaign as %s: %v", role, err)
	}
	if _, err := s.Leader(context.Background()); err != nil {
		t.Errorf("Leader as %s: %v", role, err)
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
