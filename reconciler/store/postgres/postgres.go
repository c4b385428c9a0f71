package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

var _ store.Store = (*Store)(nil)

// The advisory locks the store takes. PostgreSQL keeps advisory locks per
// database, so they are shared by whatever else uses the database: these
// are chosen not to collide (the ASCII of "reconcil", "reconmig" and
// "reci").
const (
	// LeaderLockKey is the session-level advisory lock the leader holds,
	// pg_try_advisory_lock(LeaderLockKey). pg_locks shows it as locktype
	// advisory, classid 1919247215, objid 1852008812, objsubid 1.
	LeaderLockKey int64 = 0x7265636f6e63696c
	// migrationLockKey serialises the migrations of replicas opening one
	// database at once, pg_advisory_xact_lock(migrationLockKey).
	migrationLockKey int64 = 0x7265636f6e6d6967
	// instanceLockClass is the first half of the two-key transaction lock
	// each write takes on its instance, pg_advisory_xact_lock(class,
	// hash of the name); the two-key form never meets a one-key lock.
	instanceLockClass int32 = 0x72656369
)

const (
	// writeAttempts is how often a write transaction runs when PostgreSQL
	// aborts it as a serialization failure or a deadlock; between attempts
	// it backs off from retryBackoff, with jitter.
	writeAttempts = 5
	retryBackoff  = 10 * time.Millisecond
	// defaultLeaseRetry and defaultLeaseCheck are the leadership's timing:
	// how often Campaign tries the lock, and how often the leader checks
	// the session that holds it.
	defaultLeaseRetry = time.Second
	defaultLeaseCheck = time.Second
)

// Store is the state store on one PostgreSQL database. Safe for concurrent
// use.
//
// Once Campaign has returned a Leadership, every write is fenced: it
// commits only while that leadership is the database's newest, and fails
// with an error wrapping store.ErrFenced otherwise. A Store that never
// campaigned writes unfenced.
type Store struct {
	pool     *pgxpool.Pool
	election *pgx.ConnConfig // of the dedicated session of Campaign
	name     string          // host:port/database, for errors and logs
	log      *slog.Logger
	opts     options

	// lead is the Leadership of the last Campaign that won, nil before
	// the first: it fences the writes.
	lead atomic.Pointer[Leadership]

	mu          sync.Mutex // guards campaigning and closed's closing
	campaigning bool
	closed      chan struct{}
	closeOnce   sync.Once
}

// Option configures a Store.
type Option func(*options)

type options struct {
	log        *slog.Logger
	leaseRetry time.Duration
	leaseCheck time.Duration
}

// WithLogger logs migrations, write retries and lost leaderships to l;
// nil discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.log = l }
}

// WithLeaseRetry sets how often Campaign tries to take the leader lock
// while another replica holds it, one second by default: how long a
// takeover waits, at most, once the lock is free.
func WithLeaseRetry(d time.Duration) Option {
	return func(o *options) { o.leaseRetry = d }
}

// WithLeaseCheck sets how often a leader checks the session that holds
// its lock, one second by default; a check waits as long for the answer
// (at least one second). A leader whose check fails closes Done.
func WithLeaseCheck(d time.Duration) Option {
	return func(o *options) { o.leaseCheck = d }
}

// Open connects to the PostgreSQL database of dsn (a URL or key=value
// string, as libpq and pgx read it, pool_max_conns and the like included)
// and migrates its schema to the newest version. A database from a newer
// reconciler is refused with an error wrapping store.ErrNewerSchema. The
// role needs the CREATE privilege while there are migrations to apply.
// Close the Store when done.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	ms, err := embeddedMigrations()
	if err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	return open(ctx, dsn, ms, opts...)
}

func open(ctx context.Context, dsn string, ms []migration, opts ...Option) (*Store, error) {
	o := options{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.leaseRetry <= 0 {
		o.leaseRetry = defaultLeaseRetry
	}
	if o.leaseCheck <= 0 {
		o.leaseCheck = defaultLeaseCheck
	}
	cfg, err := pgxpool.ParseConfig(dsn) // its errors leave the password out
	if err != nil {
		return nil, fmt.Errorf("open state store: %w", err)
	}
	name := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	setDefault(cfg.ConnConfig.RuntimeParams, "application_name", "reconciler")
	s := &Store{name: name, log: o.log.With("database", name), opts: o, closed: make(chan struct{})}
	s.election = electionConfig(cfg.ConnConfig)
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("open state store %s: %w", name, err)
	}
	version, err := migrate(ctx, s.pool, ms, s.log)
	if err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("open state store %s: %w", name, err)
	}
	s.log.Debug("opened state store", "schema_version", version)
	return s, nil
}

func setDefault(params map[string]string, key, value string) {
	if _, ok := params[key]; !ok {
		params[key] = value
	}
}

// Close ends the leadership, if this Store holds one, and closes the
// connections. Close is idempotent.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		close(s.closed) // no Campaign wins after this
		s.mu.Unlock()
		if l := s.lead.Load(); l != nil {
			l.stop(errClosed)
			<-l.released
		}
		s.pool.Close()
	})
}

// Get returns the instance's record, or an error wrapping store.ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (*store.Record, error) {
	if name == "" || !storable(name) { // Update never writes such a name
		return nil, fmt.Errorf("get instance %q from %s: %w", name, s.name, store.ErrNotFound)
	}
	recs, err := s.read(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("get instance %q from %s: %w", name, s.name, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("get instance %q from %s: %w", name, s.name, store.ErrNotFound)
	}
	return &recs[0], nil
}

// List returns every record, sorted by name, byte-wise.
func (s *Store) List(ctx context.Context) ([]store.Record, error) {
	recs, err := s.read(ctx, everyInstance)
	if err != nil {
		return nil, fmt.Errorf("list instances in %s: %w", s.name, err)
	}
	return recs, nil
}

// read loads records in one read-only REPEATABLE READ transaction, so the
// four tables they come from are seen at one moment. BEGIN goes in the
// batch of the reads: one round trip, and one for the end.
func (s *Store) read(ctx context.Context, name string) ([]store.Record, error) {
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	records := queueLoad(b, name)
	br := s.pool.SendBatch(ctx, b)
	defer br.Tx().Rollback(context.WithoutCancel(ctx)) // read only: nothing to commit
	if err := br.Close(); err != nil {
		return nil, err
	}
	return records(), nil
}

// Update runs fn on the instance's record in one transaction and commits
// before it returns the record as stored. See store.Store. When this Store
// has campaigned, the write is fenced (see Store).
//
// Beyond store.Prepare, it refuses (wrapping store.ErrInvalid) a record
// with a NUL byte or invalid UTF-8 in a text field, which PostgreSQL
// cannot store.
func (s *Store) Update(ctx context.Context, name string, fn func(*store.Record) error) (*store.Record, error) {
	if name == "" || !storable(name) {
		return nil, fmt.Errorf("update instance %q in %s: not a name PostgreSQL can store: %w", name, s.name, store.ErrInvalid)
	}
	var (
		records func() []store.Record
		rec     *store.Record
		fnErr   error
	)
	err := s.write(ctx, name, func(b *pgx.Batch) { records = queueLoad(b, name) }, func(ctx context.Context, tx pgx.Tx) error {
		fnErr = nil
		var old *store.Record // as stored, to write only what fn changes
		rec = &store.Record{Name: name}
		if recs := records(); len(recs) == 1 {
			rec, old = &recs[0], recs[0].Clone()
		}
		if fnErr = fn(rec); fnErr != nil {
			return fnErr
		}
		if err := store.Prepare(rec, name, time.Now()); err != nil {
			return err
		}
		if err := checkText(rec); err != nil {
			return err
		}
		b := &pgx.Batch{}
		if err := queueSave(b, rec, old); err != nil {
			return err
		}
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("write record: %w", err)
		}
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("update instance %q in %s: %w", name, s.name, err)
	}
	return rec.Clone(), nil // fn may have kept rec
}

// Delete forgets an instance, its keys, certificate and history with it.
// When this Store has campaigned, the write is fenced (see Store).
func (s *Store) Delete(ctx context.Context, name string) error {
	if !storable(name) { // Update never writes such a name
		return ctx.Err()
	}
	err := s.write(ctx, name, func(b *pgx.Batch) {
		b.Queue(`DELETE FROM instances WHERE name = $1`, name)
	}, nil)
	if err != nil {
		return fmt.Errorf("delete instance %q from %s: %w", name, s.name, err)
	}
	return nil
}

// write runs a READ COMMITTED transaction on the instance and commits it,
// again (up to writeAttempts in all, backing off) when PostgreSQL aborts it
// as a serialization failure or a deadlock.
//
// Its first round trip sends BEGIN, the fence (when this Store
// campaigned), the instance's transaction lock, and what queue queues
// behind them; then runs then (unless nil) in the transaction, and
// commits. The lock makes the writes of one instance queue behind each
// other, and what queue reads, after it, is what the last one committed.
// The fence's FOR SHARE lock on the leader row makes a new leader's epoch
// wait for this transaction.
func (s *Store) write(ctx context.Context, name string, queue func(*pgx.Batch), then func(context.Context, pgx.Tx) error) error {
	backoff := retryBackoff
	for attempt := 1; ; attempt++ {
		err := s.writeOnce(ctx, name, queue, then)
		if err == nil || !retryable(err) || attempt == writeAttempts {
			return err
		}
		s.log.Debug("state store write aborted, retrying", "attempt", attempt, "err", err)
		t := time.NewTimer(backoff/2 + rand.N(backoff))
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, context.Cause(ctx))
		case <-t.C:
		}
		backoff *= 2
	}
}

func (s *Store) writeOnce(ctx context.Context, name string, queue func(*pgx.Batch), then func(context.Context, pgx.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.BeginTx(pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err := s.fence(b); err != nil {
		return err
	}
	b.Queue(`SELECT pg_advisory_xact_lock($1, $2)`, instanceLockClass, instanceLock(name))
	queue(b)
	br := s.pool.SendBatch(ctx, b)
	tx := br.Tx()
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op; on error, nothing written
	if err := br.Close(); err != nil {
		return err
	}
	if then != nil {
		if err := then(ctx, tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// fence queues on b the check that this Store still leads, if it ever
// campaigned: the leader row's epoch, read FOR SHARE, must be the one its
// Leadership won.
func (s *Store) fence(b *pgx.Batch) error {
	l := s.lead.Load()
	if l == nil {
		return nil
	}
	select {
	case <-l.done:
		return fmt.Errorf("check leadership: epoch %d has ended (%w): %w", l.epoch, l.Err(), store.ErrFenced)
	default:
	}
	b.Queue(`SELECT epoch FROM leader WHERE id = 1 FOR SHARE`).QueryRow(func(row pgx.Row) error {
		var epoch int64
		if err := row.Scan(&epoch); err != nil {
			return fmt.Errorf("check leadership: %w", err)
		}
		if epoch != l.epoch {
			return fmt.Errorf("check leadership: epoch %d has been taken over by epoch %d: %w", l.epoch, epoch, store.ErrFenced)
		}
		return nil
	})
	return nil
}

// instanceLock is the second key of the instance's transaction lock. Two
// names of one hash only queue behind each other's writes.
func instanceLock(name string) int32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int32(h.Sum32())
}

// retryable reports whether err is PostgreSQL's "run the transaction
// again": a serialization failure or a deadlock.
func retryable(err error) bool {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return false
	}
	return e.Code == "40001" || e.Code == "40P01"
}
