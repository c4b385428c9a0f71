package sqlite

import (
	"context"
	"database/sql"
	"errors"
)

// statements are the store's queries, prepared once per database handle
// and reused in every transaction after: SQLite takes about as long to
// compile one of them as to run it, and the store runs the same few over
// and over. They are prepared when the store opens, since preparing takes
// a connection and the writer's one may be held by a transaction. A query
// not among them, or one that did not prepare (a schema without its
// table, as in the migration tests), runs unprepared, and fails there
// with SQLite's own error if it must.
type statements map[string]*sql.Stmt

func prepare(ctx context.Context, db *sql.DB, queries []string) statements {
	s := statements{}
	for _, q := range queries {
		if st, err := db.PrepareContext(ctx, q); err == nil {
			s[q] = st
		}
	}
	return s
}

func (s statements) close() error {
	var errs []error
	for _, st := range s {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// txn is a transaction that runs its queries as prepared statements.
type txn struct {
	tx    *sql.Tx
	stmts statements
}

func (t txn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st, ok := t.stmts[query]; ok {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t txn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st, ok := t.stmts[query]; ok {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}
