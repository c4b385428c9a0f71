package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

//go:embed migrations/*.sql
var embedded embed.FS

// migration is one step of the schema, from migrations/NNNN_name.sql.
type migration = store.Migration

// loadMigrations reads the migrations at the root of fsys.
func loadMigrations(fsys fs.FS) ([]migration, error) { return store.LoadMigrations(fsys) }

func embeddedMigrations() ([]migration, error) {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	return loadMigrations(sub)
}

const createMigrationsTable = `CREATE TABLE schema_migrations (
    version    integer     NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// migrate brings the database's schema to the newest of ms and returns its
// version. Each migration runs in a transaction of its own that also
// records it, so a failure leaves the schema at the last migration that
// succeeded (PostgreSQL's DDL is transactional). Every transaction first
// takes the advisory lock migrationLockKey, then reads the version, so
// replicas opening one database at once apply each migration once, and
// wait for each other rather than fail on each other's tables.
func migrate(ctx context.Context, pool *pgxpool.Pool, ms []migration, log *slog.Logger) (int, error) {
	newest := ms[len(ms)-1].Version
	for {
		applied, current, err := step(ctx, pool, ms)
		if err != nil {
			return 0, err
		}
		if applied == nil {
			return current, nil
		}
		log.Info("applied state store migration", "version", applied.Version, "name", applied.Name)
		if applied.Version == newest {
			return newest, nil
		}
	}
}

// step applies the migration that follows the database's version, if any,
// and returns it (nil when the schema is up to date) with the version the
// database is at.
func step(ctx context.Context, pool *pgxpool.Pool, ms []migration) (*migration, int, error) {
	newest := ms[len(ms)-1].Version
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return nil, 0, fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
		return nil, 0, fmt.Errorf("take the migration lock: %w", err)
	}
	// Look before creating: CREATE ... IF NOT EXISTS needs the CREATE
	// privilege even when the table is there, and a migrated database
	// should open with a role that only reads and writes.
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return nil, 0, fmt.Errorf("look for schema_migrations: %w", err)
	}
	current := 0
	if exists {
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return nil, 0, fmt.Errorf("read schema version: %w", err)
		}
	} else if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
		return nil, 0, fmt.Errorf("create schema_migrations: %w", err)
	}
	if current > newest {
		return nil, 0, fmt.Errorf("check schema version: the database is at version %d, this reconciler knows versions up to %d: %w",
			current, newest, store.ErrNewerSchema)
	}
	if current == newest {
		return nil, current, nil
	}
	m := ms[current]
	if _, err := tx.Exec(ctx, m.SQL); err != nil {
		return nil, 0, fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
		return nil, 0, fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, 0, fmt.Errorf("commit migration %04d_%s: %w", m.Version, m.Name, err)
	}
	return &m, m.Version, nil
}
