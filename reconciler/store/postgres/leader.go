package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// ErrResigned is why a Leadership ended that was resigned.
var ErrResigned = errors.New("leadership resigned")

// errClosed is why a Leadership ended whose Store was closed.
var errClosed = errors.New("state store closed")

// releaseTimeout bounds how long a leadership that ended waits to unlock
// and close its session; closing it releases the lock in any case.
const releaseTimeout = 5 * time.Second

// electionConfig is the configuration of the leader's dedicated session: the
// pool's, with the server's TCP keepalives short, so that a leader cut off
// by the network loses its lock within half a minute instead of the
// kernel's two hours. A DSN that sets them wins.
func electionConfig(pool *pgx.ConnConfig) *pgx.ConnConfig {
	c := pool.Copy()
	c.RuntimeParams = make(map[string]string, len(pool.RuntimeParams)+4)
	for k, v := range pool.RuntimeParams {
		c.RuntimeParams[k] = v
	}
	if c.RuntimeParams["application_name"] == "reconciler" {
		c.RuntimeParams["application_name"] = "reconciler leader election"
	}
	setDefault(c.RuntimeParams, "tcp_keepalives_idle", "10")
	setDefault(c.RuntimeParams, "tcp_keepalives_interval", "5")
	setDefault(c.RuntimeParams, "tcp_keepalives_count", "3")
	return c
}

// Leadership is one term of this process as the leader of the replicas on
// the database, from Campaign until Done is closed.
type Leadership struct {
	epoch      int64
	acquiredAt time.Time
	log        *slog.Logger

	conn   *pgx.Conn // the session holding the lock; watch's alone
	check  time.Duration
	stopCh chan error // stop's reason for watch, once
	once   sync.Once

	done     chan struct{} // closed when the term ends, err set before
	err      error
	released chan struct{} // closed once the session is gone, relErr set before
	relErr   error
}

// Leader is who leads, as the database records it.
type Leader struct {
	// ID and Address are what the leader gave Campaign.
	ID, Address string
	// Epoch counts the terms, from 1; 0 before the first.
	Epoch int64
	// AcquiredAt is when the term began, by the database's clock.
	AcquiredAt time.Time
	// Held says whether a session holds the leader lock now. A leader
	// recorded but not held is gone (its session ended) and nobody has
	// taken over yet, or the next has the lock and is about to record
	// itself.
	Held bool
}

// Campaign blocks until this process leads the replicas on the database,
// and returns its Leadership, or until ctx is done. id names the replica
// and address tells the others where to reach it (Leader returns both).
//
// It opens a session of its own, outside the pool, tries the advisory
// lock LeaderLockKey in it every LeaseRetry, and once it holds the lock
// bumps the leader row's epoch: from then on this Store's writes are
// fenced on that epoch (see Store). The Leadership lasts as long as the
// session (checked every LeaseCheck) and ctx, or until Resign.
//
// A Store campaigns once at a time: Campaign fails while another Campaign
// of the Store runs or its Leadership lasts. It fails, too, when a query
// of its session does; the caller campaigns again after a pause.
func (s *Store) Campaign(ctx context.Context, id, address string) (*Leadership, error) {
	if id == "" {
		return nil, fmt.Errorf("campaign for the leadership of %s: empty replica id", s.name)
	}
	if err := s.startCampaign(); err != nil {
		return nil, fmt.Errorf("campaign for the leadership of %s: %w", s.name, err)
	}
	defer s.endCampaign()
	conn, err := pgx.ConnectConfig(ctx, s.election)
	if err != nil {
		return nil, fmt.Errorf("campaign for the leadership of %s: connect: %w", s.name, err)
	}
	l, err := s.campaign(ctx, conn, id, address)
	if err == nil {
		s.mu.Lock()
		select {
		case <-s.closed:
			err = errClosed
		default:
			s.lead.Store(l)
		}
		s.mu.Unlock()
	}
	if err != nil {
		// Closing the session releases the lock, if it was taken.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		conn.Close(cctx)
		return nil, fmt.Errorf("campaign for the leadership of %s: %w", s.name, err)
	}
	s.log.Debug("won the leadership", "replica", id, "epoch", l.epoch)
	go l.watch(ctx)
	return l, nil
}

func (s *Store) startCampaign() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return errClosed
	default:
	}
	if s.campaigning {
		return errors.New("another campaign of this store is running")
	}
	if l := s.lead.Load(); l != nil && l.Err() == nil {
		return fmt.Errorf("this store leads already, epoch %d", l.epoch)
	}
	s.campaigning = true
	return nil
}

func (s *Store) endCampaign() {
	s.mu.Lock()
	s.campaigning = false
	s.mu.Unlock()
}

// campaign takes the leader lock on conn, waiting for it, and records the
// new term.
func (s *Store) campaign(ctx context.Context, conn *pgx.Conn, id, address string) (*Leadership, error) {
	t := time.NewTicker(s.opts.leaseRetry)
	defer t.Stop()
	for {
		var locked bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, LeaderLockKey).Scan(&locked); err != nil {
			return nil, fmt.Errorf("try the leader lock: %w", err)
		}
		if locked {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the leader lock: %w", context.Cause(ctx))
		case <-s.closed:
			return nil, errClosed
		case <-t.C:
		}
	}
	// Waits for the writes of the previous term that read its epoch FOR
	// SHARE; those that come after read this one and are refused.
	var at time.Time
	l := &Leadership{conn: conn, check: s.opts.leaseCheck, log: s.log,
		stopCh: make(chan error, 1), done: make(chan struct{}), released: make(chan struct{})}
	err := conn.QueryRow(ctx, `UPDATE leader SET epoch = epoch + 1, holder = $1, address = $2, acquired_at = now()
WHERE id = 1 RETURNING epoch, acquired_at`, id, address).Scan(&l.epoch, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errors.New("record the new term: the leader table has lost its row (restore it: INSERT INTO leader (id) VALUES (1))")
	}
	if err != nil {
		return nil, fmt.Errorf("record the new term: %w", err)
	}
	l.acquiredAt = at.UTC()
	l.log = s.log.With("replica", id, "epoch", l.epoch)
	return l, nil
}

// Leader returns who leads, or led last, as the database records it, and
// whether the leader lock is held now.
func (s *Store) Leader(ctx context.Context) (Leader, error) {
	var (
		l  Leader
		at pgtype.Timestamptz
	)
	err := s.pool.QueryRow(ctx, `SELECT holder, address, epoch, acquired_at, EXISTS (
    SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid = $1::bigint::oid AND objid = $2::bigint::oid)
FROM leader WHERE id = 1`, uint32(LeaderLockKey>>32), uint32(LeaderLockKey&0xffffffff)).Scan(&l.ID, &l.Address, &l.Epoch, &at, &l.Held)
	if err != nil {
		return Leader{}, fmt.Errorf("read the leader of %s: %w", s.name, err)
	}
	l.AcquiredAt = fromTimestamptz(at)
	return l, nil
}

// Epoch returns the term's number: each Campaign that wins on the database
// takes the next.
func (l *Leadership) Epoch() int64 { return l.epoch }

// AcquiredAt returns when the term began, by the database's clock.
func (l *Leadership) AcquiredAt() time.Time { return l.acquiredAt }

// Done returns a channel closed when the term ends: the session holding
// the lock failed a check, Resign was called, the Store was closed or the
// context given to Campaign is done. From then on the Store's writes are
// refused (store.ErrFenced) until it wins a new Campaign.
func (l *Leadership) Done() <-chan struct{} { return l.done }

// Err returns nil while the term lasts, and then why it ended: ErrResigned,
// the context's cause, or the failed check.
func (l *Leadership) Err() error {
	select {
	case <-l.done:
		return l.err
	default:
		return nil
	}
}

// Resign ends the term and releases the lock, so that another replica
// takes over at its next try. It returns once the lock is released, or
// when ctx is done (the release then finishes on its own, within
// seconds). Resign is idempotent; after a lost term it only waits for the
// session to be closed.
func (l *Leadership) Resign(ctx context.Context) error {
	l.stop(ErrResigned)
	select {
	case <-l.released:
		if l.relErr != nil {
			return fmt.Errorf("resign leadership epoch %d: %w", l.epoch, l.relErr)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("resign leadership epoch %d: %w", l.epoch, context.Cause(ctx))
	}
}

// stop asks watch to end the term for reason, unless it has ended.
func (l *Leadership) stop(reason error) {
	l.once.Do(func() { l.stopCh <- reason })
}

// watch checks the session every l.check until the term ends, then ends
// it: Done first, so that the Store writes no more, then the lock.
func (l *Leadership) watch(ctx context.Context) {
	t := time.NewTicker(l.check)
	defer t.Stop()
	var reason error
	healthy := true
	for reason == nil {
		select {
		case <-ctx.Done():
			reason = context.Cause(ctx)
		case reason = <-l.stopCh:
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, max(l.check, time.Second))
			err := l.conn.Ping(cctx)
			cancel()
			if err != nil && ctx.Err() == nil {
				reason, healthy = fmt.Errorf("check the session holding the leader lock: %w", err), false
				l.log.Warn("lost the leadership", "err", err)
			}
		}
	}
	l.err = reason
	close(l.done)

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if healthy {
		if _, err := l.conn.Exec(rctx, `SELECT pg_advisory_unlock($1)`, LeaderLockKey); err != nil {
			l.relErr = fmt.Errorf("release the leader lock: %w", err)
		}
	}
	if err := l.conn.Close(rctx); err != nil && l.relErr == nil && healthy {
		l.relErr = fmt.Errorf("close the leader session: %w", err)
	}
	close(l.released)
}
