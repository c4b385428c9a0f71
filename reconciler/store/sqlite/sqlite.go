package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

var _ store.Store = (*Store)(nil)

const (
	// busyTimeout is how long a statement waits for another process's lock
	// before SQLite gives up with SQLITE_BUSY.
	busyTimeout = 5 * time.Second
	// writeAttempts is how often a write transaction runs when it keeps
	// meeting SQLITE_BUSY; between attempts it backs off from retryBackoff.
	writeAttempts = 3
	retryBackoff  = 50 * time.Millisecond
	// readers is the size of the read-only pool.
	readers = 4
	// maxBatch bounds the writes committed together (see committer).
	maxBatch = 128
)

// Store is the state store on one SQLite file. Safe for concurrent use.
type Store struct {
	path   string
	writer *sql.DB // one connection: SQLite has one writer at a time anyway
	reader *sql.DB // read-only connections; WAL lets them read while writing
	// writeStmts and readStmts are the statements prepared on each.
	writeStmts, readStmts statements
	log                   *slog.Logger

	// writes feeds the committer, which runs until stop is closed and
	// then closes stopped.
	writes        chan *job
	stop, stopped chan struct{}
	commits       atomic.Int64 // transactions committed, for tests

	closeOnce sync.Once
	closeErr  error
}

// job is one write waiting for the committer: do runs inside the batch's
// transaction, and its result (nil once committed) goes to done.
type job struct {
	ctx  context.Context
	do   func(context.Context, querier) error
	done chan error
}

// Option configures a Store.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger logs migrations and write retries to l; nil discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// Open opens the state store at path, creating the file (mode 0600) if it
// does not exist, and migrates its schema to the newest version. A
// database from a newer reconciler is refused with an error wrapping
// store.ErrNewerSchema. The directory must exist. Close the Store when
// done.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if path == "" {
		return nil, errors.New("open state store: empty path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", path, err)
	}
	ms, err := loadMigrations(mustSub(embedded, "migrations"))
	if err != nil {
		return nil, fmt.Errorf("open state store %s: %w", abs, err)
	}
	return open(ctx, abs, ms, o)
}

func open(ctx context.Context, path string, ms []migration, o options) (*Store, error) {
	if err := create(path); err != nil {
		return nil, fmt.Errorf("open state store %s: %w", path, err)
	}
	s := &Store{path: path, log: o.log.With("path", path)}
	if err := s.init(ctx, ms); err != nil {
		return nil, errors.Join(fmt.Errorf("open state store %s: %w", path, err), s.Close())
	}
	return s, nil
}

// create makes the database file 0600 before SQLite does (with the
// process's umask, often 0644); SQLite gives the WAL and shared-memory
// files the database file's mode.
func create(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	return f.Close()
}

func (s *Store) init(ctx context.Context, ms []migration) error {
	var err error
	if s.writer, err = sql.Open("sqlite", dsn(s.path, true)); err != nil {
		return fmt.Errorf("open writer: %w", err)
	}
	s.writer.SetMaxOpenConns(1)
	s.writer.SetMaxIdleConns(1)
	var mode string
	if err := s.writer.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("set journal mode: SQLite kept %q, want wal (is the file on a network file system?)", mode)
	}
	version, err := migrate(ctx, s.writer, ms, s.log)
	if err != nil {
		return err
	}
	if s.reader, err = sql.Open("sqlite", dsn(s.path, false)); err != nil {
		return fmt.Errorf("open readers: %w", err)
	}
	s.reader.SetMaxOpenConns(readers)
	s.reader.SetMaxIdleConns(readers)
	if err := s.reader.PingContext(ctx); err != nil {
		return fmt.Errorf("open readers: %w", err)
	}
	s.writeStmts, s.readStmts = prepare(ctx, s.writer, writeQueries()), prepare(ctx, s.reader, readQueries())
	s.writes, s.stop, s.stopped = make(chan *job), make(chan struct{}), make(chan struct{})
	go s.committer()
	s.log.Debug("opened state store", "schema_version", version)
	return nil
}

// dsn is the driver's name for the database at path. Every connection
// waits for locks, enforces foreign keys and syncs fully; the writer sets
// WAL mode (which then sticks to the file) and begins its transactions
// IMMEDIATE, taking the write lock up front rather than failing to
// upgrade a read lock halfway; readers cannot write.
func dsn(path string, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(FULL)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Path returns the database file's absolute path.
func (s *Store) Path() string { return s.path }

// Close closes the database, readers first so the writer's connection is
// the last and folds the WAL back into the file. Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
			<-s.stopped // the batch being committed is finished first
		}
		var errs []error
		errs = append(errs, s.readStmts.close(), s.writeStmts.close())
		if s.reader != nil {
			errs = append(errs, s.reader.Close())
		}
		if s.writer != nil {
			errs = append(errs, s.writer.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close state store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// Get returns the instance's record, or an error wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*store.Record, error) {
	if name == "" {
		return nil, fmt.Errorf("get instance %q from %s: %w", name, s.path, store.ErrNotFound)
	}
	recs, err := s.read(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("get instance %q from %s: %w", name, s.path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("get instance %q from %s: %w", name, s.path, store.ErrNotFound)
	}
	return &recs[0], nil
}

// List returns every record, sorted by name.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	recs, err := s.read(ctx, everyInstance)
	if err != nil {
		return nil, fmt.Errorf("list instances in %s: %w", s.path, err)
	}
	return recs, nil
}

// read loads records in one read transaction, so the four tables they come
// from are seen at one moment.
func (s *Store) read(ctx context.Context, name string) ([]store.Record, error) {
	tx, err := s.reader.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback() // read only: nothing to commit
	return load(ctx, txn{tx, s.readStmts}, name)
}

// Update runs fn on the instance's record in one IMMEDIATE transaction and
// commits (to disk) before it returns the record as stored. See
// store.Store.
func (s *Store) Update(ctx context.Context, name string, fn func(*store.Record) error) (*store.Record, error) {
	if name == "" {
		return nil, fmt.Errorf("update instance %q in %s: empty name: %w", name, s.path, store.ErrInvalid)
	}
	var (
		rec   *store.Record
		fnErr error
	)
	err := s.write(ctx, func(ctx context.Context, tx querier) error {
		fnErr = nil
		recs, err := load(ctx, tx, name)
		if err != nil {
			return err
		}
		rec = &store.Record{Name: name}
		if len(recs) == 1 {
			rec = &recs[0]
		}
		if fnErr = fn(rec); fnErr != nil {
			return fnErr
		}
		if err := store.Prepare(rec, name, time.Now()); err != nil {
			return err
		}
		return save(ctx, tx, rec)
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("update instance %q in %s: %w", name, s.path, err)
	}
	return rec.Clone(), nil // fn may have kept rec
}

// Delete forgets an instance, its keys, certificate and history with it.
func (s *Store) Delete(ctx context.Context, name string) error {
	err := s.write(ctx, func(ctx context.Context, tx querier) error {
		_, err := tx.ExecContext(ctx, deleteInstance, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete instance %q from %s: %w", name, s.path, err)
	}
	return nil
}

// write hands do to the committer and returns once the transaction it
// ran in is committed (nil) or do or the transaction failed. do gets the
// batch's context, not ctx: a caller that gives up must not interrupt a
// transaction that holds others' writes. A write whose ctx is done before
// its turn is not made; once begun, it is waited for.
func (s *Store) write(ctx context.Context, do func(context.Context, querier) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &job{ctx: ctx, do: do, done: make(chan error, 1)}
	select {
	case s.writes <- j:
	case <-s.stop:
		return errClosed
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	err := <-j.done
	if p, ok := errors.AsType[*panicked](err); ok {
		panic(p.value)
	}
	return err
}

var errClosed = errors.New("state store closed")

// The savepoint each write of a batch runs in.
const (
	savepoint  = "SAVEPOINT write"
	rollbackTo = "ROLLBACK TO write"
	release    = "RELEASE write"
)

// committer is the one writer: group commit. It takes the writes waiting
// when it is free, up to maxBatch, runs each in a savepoint of one
// transaction (a write that fails is rolled back alone), and commits them
// with one sync to disk. A write that arrives while a batch commits waits
// for the next, so a lone write is never delayed, and under load the
// fsyncs are shared: eight workers' writes cost about one.
func (s *Store) committer() {
	defer close(s.stopped)
	batch := make([]*job, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case j := <-s.writes:
			batch = append(batch, j)
		case <-s.stop:
			return
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case j := <-s.writes:
				batch = append(batch, j)
			default:
				break gather
			}
		}
		results, err := s.commit(batch)
		for i, j := range batch {
			j.done <- errors.Join(results[i], err)
		}
	}
}

// commit runs batch in one transaction and commits it: again (up to
// writeAttempts in all, backing off) while SQLite reports the database
// busy or locked, which happens only when another process holds the lock
// past the busy timeout. It returns each write's own error, and the
// transaction's, which every write shares.
func (s *Store) commit(batch []*job) ([]error, error) {
	ctx := context.Background() // each write's own context is checked before it runs
	results := make([]error, len(batch))
	backoff := retryBackoff
	for attempt := 1; ; attempt++ {
		clear(results)
		err := s.commitOnce(ctx, batch, results)
		if err == nil || !busy(err) || attempt == writeAttempts {
			return results, err
		}
		s.log.Debug("state store busy, retrying the write", "attempt", attempt, "writes", len(batch), "err", err)
		time.Sleep(backoff)
		backoff *= 2
	}
}

func (s *Store) commitOnce(ctx context.Context, batch []*job, results []error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write: %w", err)
	}
	defer tx.Rollback() // after Commit, a no-op; on error or panic, nothing written
	q := txn{tx, s.writeStmts}
	for i, j := range batch {
		if _, err := q.ExecContext(ctx, savepoint); err != nil {
			return fmt.Errorf("begin write: %w", err)
		}
		if results[i] = j.run(ctx, q); results[i] != nil {
			if busy(results[i]) {
				return results[i] // the batch is retried whole
			}
			if _, err := q.ExecContext(ctx, rollbackTo); err != nil {
				return fmt.Errorf("roll back a failed write: %w", err)
			}
		}
		if _, err := q.ExecContext(ctx, release); err != nil {
			return fmt.Errorf("end write: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	s.commits.Add(1)
	return nil
}

// run runs the write unless its caller has given up. A panic in it (in
// Update's fn, say) fails this write alone; write panics again in the
// caller's goroutine, as it would have without the committer.
func (j *job) run(ctx context.Context, tx querier) (err error) {
	if err := j.ctx.Err(); err != nil {
		return context.Cause(j.ctx)
	}
	defer func() {
		if v := recover(); v != nil {
			err = &panicked{v}
		}
	}()
	return j.do(ctx, tx)
}

// panicked carries a write's panic to its caller.
type panicked struct{ value any }

func (p *panicked) Error() string { return fmt.Sprintf("write panicked: %v", p.value) }

// busy reports whether err is SQLite's "try again later".
func busy(err error) bool {
	var e *sqlitedriver.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() & 0xff { // the primary code, without the extended bits
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a constant of this package
	}
	return sub
}
