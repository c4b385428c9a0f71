package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

//go:embed migrations/*.sql
var embedded embed.FS

// migration is one step of the schema, from migrations/NNNN_name.sql.
type migration struct {
	version int
	name    string
	sql     string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// loadMigrations reads the migrations at the root of fsys. It refuses a
// file not named NNNN_name.sql and versions that do not run 1, 2, 3, ...
// without a gap: a misnamed migration would otherwise be skipped without a
// word.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var out []migration
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
		out = append(out, migration{version: version, name: m[2], sql: string(text)})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read migrations: none found")
	}
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at TEXT    NOT NULL
) STRICT`

const selectSchemaVersion = `SELECT coalesce(max(version), 0) FROM schema_migrations`

// migrate brings db's schema to the newest of ms and returns its version.
// Each migration runs in a transaction of its own that also records it, so
// a failure leaves the schema at the last migration that succeeded. The
// version is read again inside each transaction, so two processes opening
// one file at once apply each migration once.
func migrate(ctx context.Context, db *sql.DB, ms []migration, log *slog.Logger) (int, error) {
	newest := ms[len(ms)-1].version
	if _, err := db.ExecContext(ctx, createMigrationsTable); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, selectSchemaVersion).Scan(&current); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if err := checkVersion(current, newest); err != nil || current == newest {
		return current, err
	}
	for _, m := range ms[current:] {
		applied, err := apply(ctx, db, m, newest)
		if err != nil {
			return 0, err
		}
		if applied {
			log.Info("applied state store migration", "version", m.version, "name", m.name)
		}
	}
	return newest, nil
}

// apply runs m unless the database is already at its version or beyond.
func apply(ctx context.Context, db *sql.DB, m migration, newest int) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration %04d_%s: %w", m.version, m.name, err)
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, selectSchemaVersion).Scan(&current); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if err := checkVersion(current, newest); err != nil || current >= m.version {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("apply migration %04d_%s: %w", m.version, m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.version, m.name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return false, fmt.Errorf("record migration %04d_%s: %w", m.version, m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration %04d_%s: %w", m.version, m.name, err)
	}
	return true, nil
}

func checkVersion(current, newest int) error {
	if current > newest {
		return fmt.Errorf("check schema version: the database is at version %d, this reconciler knows versions up to %d: %w",
			current, newest, store.ErrNewerSchema)
	}
	return nil
}
