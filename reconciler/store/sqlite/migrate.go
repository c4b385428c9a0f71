package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

//go:embed migrations/*.sql
var embedded embed.FS

// migration is one step of the schema, from migrations/NNNN_name.sql.
type migration = store.Migration

// loadMigrations reads the migrations at the root of fsys.
func loadMigrations(fsys fs.FS) ([]migration, error) { return store.LoadMigrations(fsys) }

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
	newest := ms[len(ms)-1].Version
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
			log.Info("applied state store migration", "version", m.Version, "name", m.Name)
		}
	}
	return newest, nil
}

// apply runs m unless the database is already at its version or beyond.
func apply(ctx context.Context, db *sql.DB, m migration, newest int) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin migration %04d_%s: %w", m.Version, m.Name, err)
	}
	defer tx.Rollback()
	var current int
	if err := tx.QueryRowContext(ctx, selectSchemaVersion).Scan(&current); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	if err := checkVersion(current, newest); err != nil || current >= m.Version {
		return false, err
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
		m.Version, m.Name, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return false, fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit migration %04d_%s: %w", m.Version, m.Name, err)
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
