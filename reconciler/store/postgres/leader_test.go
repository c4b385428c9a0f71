package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

// fast is the leadership's timing in the tests: a takeover within 50ms of
// the lock's release, a loss noticed within 100ms.
var fast = []Option{WithLeaseRetry(50 * time.Millisecond), WithLeaseCheck(100 * time.Millisecond)}

// deaf never checks its session: only the fence stops its writes.
var deaf = []Option{WithLeaseRetry(50 * time.Millisecond), WithLeaseCheck(time.Hour)}

// replicas opens one store per option list on one fresh database, and a
// session of the test's own on it, as an operator's psql.
func replicas(t *testing.T, opts ...[]Option) ([]*Store, *pgx.Conn) {
	t.Helper()
	dsn := freshDatabase(t)
	var out []*Store
	for _, o := range opts {
		out = append(out, openStore(t, dsn, o...))
	}
	return out, connect(t, dsn)
}

type campaignResult struct {
	l   *Leadership
	err error
}

// campaignAsync runs s.Campaign in the background; its result arrives on
// the channel.
func campaignAsync(ctx context.Context, s *Store, id, address string) <-chan campaignResult {
	ch := make(chan campaignResult, 1)
	go func() {
		l, err := s.Campaign(ctx, id, address)
		ch <- campaignResult{l, err}
	}()
	return ch
}

func campaign(t *testing.T, s *Store, id string) *Leadership {
	t.Helper()
	l, err := s.Campaign(context.Background(), id, "https://"+id+".example:8443")
	if err != nil {
		t.Fatalf("Campaign(%q): %v", id, err)
	}
	return l
}

// won waits for a campaign running in the background to win.
func won(t *testing.T, ch <-chan campaignResult, within time.Duration) *Leadership {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Campaign: %v", r.err)
		}
		return r.l
	case <-time.After(within):
		t.Fatalf("Campaign has not won after %s", within)
		return nil
	}
}

// waiting asserts that a campaign running in the background is still
// waiting after d.
func waiting(t *testing.T, ch <-chan campaignResult, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Campaign failed, where it should wait: %v", r.err)
		}
		t.Fatalf("Campaign won epoch %d, where it should wait", r.l.Epoch())
	case <-time.After(d):
	}
}

// ended waits, up to within, for l's term to end.
func ended(t *testing.T, l *Leadership, within time.Duration) {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	select {
	case <-l.Done():
		return
	default:
	}
	select {
	case <-l.Done():
	case <-timer.C:
		t.Fatalf("Done of epoch %d not closed after %s", l.Epoch(), within)
	}
}

// killLeaderSession terminates the backend that holds the leader lock, as
// an operator would, and waits for it to exit.
func killLeaderSession(t *testing.T, c *pgx.Conn) {
	t.Helper()
	var pid int32
	if err := c.QueryRow(context.Background(), `SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 1
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid = 1919247215 AND objid = 1852008812`).Scan(&pid); err != nil {
		t.Fatalf("find the session holding the leader lock: %v", err)
	}
	var ok bool
	if err := c.QueryRow(context.Background(), `SELECT pg_terminate_backend($1, 5000)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v, %v", pid, ok, err)
	}
}

func leader(t *testing.T, s *Store) Leader {
	t.Helper()
	l, err := s.Leader(context.Background())
	if err != nil {
		t.Fatalf("Leader: %v", err)
	}
	return l
}

func increment(r *store.Record) error { r.Generation++; return nil }

func TestCampaignElectsOne(t *testing.T) {
	t.Parallel()
	ss, _ := replicas(t, fast, fast, fast)
	a, b, unfenced := ss[0], ss[1], ss[2]
	before := time.Now()
	la := campaign(t, a, "replica-a")
	if la.Epoch() != 1 {
		t.Errorf("first epoch = %d, want 1", la.Epoch())
	}
	ctx, cancel := context.WithCancel(context.Background())
	lost := campaignAsync(ctx, b, "replica-b", "https://replica-b.example:8443")
	waiting(t, lost, 300*time.Millisecond)

	want := Leader{ID: "replica-a", Address: "https://replica-a.example:8443", Epoch: 1, AcquiredAt: la.AcquiredAt(), Held: true}
	if diff := cmp.Diff(want, leader(t, b)); diff != "" {
		t.Errorf("Leader (-want +got):\n%s", diff)
	}
	if at := la.AcquiredAt(); at.Before(before.Add(-time.Minute)) || at.After(time.Now().Add(time.Minute)) {
		t.Errorf("AcquiredAt = %s, not about now", at)
	}
	if _, err := a.Campaign(context.Background(), "replica-a", ""); err == nil || !strings.Contains(err.Error(), "leads already") {
		t.Errorf("a second Campaign of the leader = %v, want an error saying it leads already", err)
	}
	if _, err := a.Update(context.Background(), "orders-db", increment); err != nil {
		t.Errorf("the leader's Update: %v", err)
	}
	if _, err := unfenced.Update(context.Background(), "orders-db", increment); err != nil {
		t.Errorf("Update of a store that never campaigned: %v", err)
	}

	cancel()
	if r := <-lost; !errors.Is(r.err, context.Canceled) {
		t.Errorf("cancelled Campaign = %v, %v; want context.Canceled", r.l, r.err)
	}
	if got := leader(t, b); got.ID != "replica-a" || !got.Held {
		t.Errorf("after the loser gave up, Leader = %+v", got)
	}
}

func TestKilledSessionHandsOver(t *testing.T) {
	t.Parallel()
	ss, c := replicas(t, fast, fast)
	a, b := ss[0], ss[1]
	la := campaign(t, a, "replica-a")
	want, err := a.Update(context.Background(), "orders-db", increment)
	if err != nil {
		t.Fatal(err)
	}
	next := campaignAsync(context.Background(), b, "replica-b", "https://replica-b.example:8443")
	waiting(t, next, 200*time.Millisecond)

	killLeaderSession(t, c)
	ended(t, la, 5*time.Second)
	if err := la.Err(); err == nil || !strings.Contains(err.Error(), "check the session holding the leader lock") {
		t.Errorf("Err = %v, want the failed check", err)
	}
	lb := won(t, next, 5*time.Second)
	if lb.Epoch() <= la.Epoch() {
		t.Errorf("new epoch %d, old %d: want a higher one", lb.Epoch(), la.Epoch())
	}
	if got := leader(t, a); got.ID != "replica-b" || got.Epoch != lb.Epoch() || !got.Held {
		t.Errorf("Leader = %+v, want replica-b at epoch %d, held", got, lb.Epoch())
	}

	got, err := a.Update(context.Background(), "orders-db", increment)
	if !errors.Is(err, store.ErrFenced) || got != nil {
		t.Errorf("the old leader's Update = %v, %v; want nil and ErrFenced", got, err)
	}
	if err := a.Delete(context.Background(), "orders-db"); !errors.Is(err, store.ErrFenced) {
		t.Errorf("the old leader's Delete = %v, want ErrFenced", err)
	}
	stored, err := b.Get(context.Background(), "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, stored); diff != "" {
		t.Errorf("the old leader wrote (-want +got):\n%s", diff)
	}
	if _, err := b.Update(context.Background(), "orders-db", increment); err != nil {
		t.Errorf("the new leader's Update: %v", err)
	}
	if err := la.Resign(context.Background()); err != nil {
		t.Errorf("Resign of a lost term: %v", err)
	}
}

func TestStaleLeaderIsFencedBeforeItNotices(t *testing.T) {
	// The old leader never checks its session: it believes it leads, and
	// only the epoch refuses its writes.
	t.Parallel()
	ss, c := replicas(t, deaf, fast)
	a, b := ss[0], ss[1]
	la := campaign(t, a, "replica-a")
	want, err := a.Update(context.Background(), "orders-db", increment)
	if err != nil {
		t.Fatal(err)
	}
	killLeaderSession(t, c)
	lb := won(t, campaignAsync(context.Background(), b, "replica-b", ""), 5*time.Second)
	select {
	case <-la.Done():
		t.Fatal("the deaf leader noticed its loss; the test does not test the fence")
	default:
	}
	_, err = a.Update(context.Background(), "orders-db", increment)
	if !errors.Is(err, store.ErrFenced) || !strings.Contains(err.Error(), fmt.Sprintf("taken over by epoch %d", lb.Epoch())) {
		t.Errorf("the stale leader's Update = %v, want ErrFenced by epoch %d", err, lb.Epoch())
	}
	if err := a.Delete(context.Background(), "orders-db"); !errors.Is(err, store.ErrFenced) {
		t.Errorf("the stale leader's Delete = %v, want ErrFenced", err)
	}
	if _, err := a.Update(context.Background(), "other-db", increment); !errors.Is(err, store.ErrFenced) {
		t.Errorf("the stale leader's Update of a new record = %v, want ErrFenced", err)
	}
	recs, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.Record{*want}, recs); diff != "" {
		t.Errorf("the stale leader wrote (-want +got):\n%s", diff)
	}
}

func TestResignHandsOverPromptly(t *testing.T) {
	t.Parallel()
	ss, _ := replicas(t, fast, fast)
	a, b := ss[0], ss[1]
	la := campaign(t, a, "replica-a")
	next := campaignAsync(context.Background(), b, "replica-b", "")
	waiting(t, next, 200*time.Millisecond)

	start := time.Now()
	if err := la.Resign(context.Background()); err != nil {
		t.Fatalf("Resign: %v", err)
	}
	lb := won(t, next, time.Second)
	t.Logf("handed over in %s", time.Since(start))
	ended(t, la, 0)
	if !errors.Is(la.Err(), ErrResigned) {
		t.Errorf("Err = %v, want ErrResigned", la.Err())
	}
	if err := la.Resign(context.Background()); err != nil {
		t.Errorf("second Resign: %v", err)
	}
	if _, err := a.Update(context.Background(), "orders-db", increment); !errors.Is(err, store.ErrFenced) {
		t.Errorf("Update after Resign = %v, want ErrFenced", err)
	}
	if lb.Epoch() != la.Epoch()+1 {
		t.Errorf("epoch after the handover = %d, want %d", lb.Epoch(), la.Epoch()+1)
	}

	// The replica that resigned may campaign again, and waits its turn.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if l, err := a.Campaign(ctx, "replica-a", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Campaign while another leads = %v, %v; want it to wait until its deadline", l, err)
	}
}

func TestTermEndsWithItsContextAndStore(t *testing.T) {
	cases := []struct {
		name string
		end  func(cancel context.CancelFunc, s *Store)
		want error
	}{
		{"the context given to Campaign is done", func(cancel context.CancelFunc, _ *Store) { cancel() }, context.Canceled},
		{"the store is closed", func(_ context.CancelFunc, s *Store) { s.Close() }, errClosed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ss, _ := replicas(t, fast, fast)
			a, b := ss[0], ss[1]
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			la, err := a.Campaign(ctx, "replica-a", "")
			if err != nil {
				t.Fatal(err)
			}
			next := campaignAsync(context.Background(), b, "replica-b", "")
			waiting(t, next, 100*time.Millisecond)
			c.end(cancel, a)
			ended(t, la, time.Second)
			if !errors.Is(la.Err(), c.want) {
				t.Errorf("Err = %v, want %v", la.Err(), c.want)
			}
			won(t, next, 2*time.Second)
		})
	}
}

func TestLeaderReportsAGoneLeader(t *testing.T) {
	t.Parallel()
	ss, c := replicas(t, deaf)
	a := ss[0]
	la := campaign(t, a, "replica-a")
	killLeaderSession(t, c)
	want := Leader{ID: "replica-a", Address: "https://replica-a.example:8443", Epoch: la.Epoch(), AcquiredAt: la.AcquiredAt()}
	if diff := cmp.Diff(want, leader(t, a)); diff != "" {
		t.Errorf("Leader after its session ended (-want +got):\n%s", diff)
	}
}

func TestTakeoverWaitsForTheOldLeadersWrite(t *testing.T) {
	// A write of the old term that read its epoch before the takeover
	// commits, and the new term begins after it.
	t.Parallel()
	ss, c := replicas(t, deaf, fast)
	a, b := ss[0], ss[1]
	campaign(t, a, "replica-a")
	inside, hold := make(chan struct{}), make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release) // a failing test must not leave the write, and Close, waiting
	var once sync.Once
	written := make(chan error, 1)
	go func() {
		_, err := a.Update(context.Background(), "orders-db", func(r *store.Record) error {
			once.Do(func() { close(inside) })
			<-hold
			r.Generation = 41
			return nil
		})
		written <- err
	}()
	<-inside
	killLeaderSession(t, c)
	next := campaignAsync(context.Background(), b, "replica-b", "")
	waiting(t, next, 500*time.Millisecond) // it has the lock; its epoch waits on the write's FOR SHARE
	release()
	if err := <-written; err != nil {
		t.Errorf("the old term's write, begun before the takeover: %v", err)
	}
	won(t, next, 5*time.Second)
	got, err := b.Get(context.Background(), "orders-db")
	if err != nil || got.Generation != 41 {
		t.Errorf("Get = %v, %v; want the old term's write", got, err)
	}
	if _, err := a.Update(context.Background(), "orders-db", increment); !errors.Is(err, store.ErrFenced) {
		t.Errorf("the old term's next write = %v, want ErrFenced", err)
	}
}

func TestFencedWritesNeverCommitAfterTheTakeover(t *testing.T) {
	// Writers of the old leader keep writing through the takeover: every
	// write they were told committed did, every other was fenced, and
	// none landed after the new term began.
	t.Parallel()
	ss, c := replicas(t, deaf, fast)
	a, b := ss[0], ss[1]
	campaign(t, a, "replica-a")
	const writers = 8
	var (
		wg        sync.WaitGroup
		committed [writers]uint64
		last      [writers]error
	)
	deadline := time.Now().Add(10 * time.Second)
	for i := range writers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				_, err := a.Update(context.Background(), fmt.Sprintf("db-%d", i), increment)
				if err != nil {
					last[i] = err
					return
				}
				committed[i]++
			}
			last[i] = errors.New("still writing at the deadline")
		})
	}
	time.Sleep(200 * time.Millisecond)
	killLeaderSession(t, c)
	lb := won(t, campaignAsync(context.Background(), b, "replica-b", ""), 5*time.Second)
	atTakeover, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	after, err := b.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(atTakeover, after); diff != "" {
		t.Errorf("the old leader wrote after epoch %d began (-at takeover +after):\n%s", lb.Epoch(), diff)
	}
	want := map[string]uint64{}
	for i := range writers {
		if !errors.Is(last[i], store.ErrFenced) {
			t.Errorf("writer %d ended with %v, want ErrFenced", i, last[i])
		}
		if committed[i] == 0 {
			t.Errorf("writer %d committed nothing before the takeover", i)
		}
		want[fmt.Sprintf("db-%d", i)] = committed[i]
	}
	got := map[string]uint64{}
	for _, r := range after {
		got[r.Name] = r.Generation
		if r.UpdatedAt.After(lb.AcquiredAt().Add(time.Second)) {
			t.Errorf("%s was written at %s, after epoch %d began at %s", r.Name, r.UpdatedAt, lb.Epoch(), lb.AcquiredAt())
		}
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("generations against the writes reported committed (-want +got):\n%s", diff)
	}
}

func TestSessionsAreNamedForTheOperator(t *testing.T) {
	t.Parallel()
	ss, c := replicas(t, fast)
	campaign(t, ss[0], "replica-a")
	if _, err := ss[0].Update(context.Background(), "orders-db", increment); err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(context.Background(), `SELECT DISTINCT a.application_name, l.pid IS NOT NULL
FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.objid = 1852008812
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()
ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	type session struct {
		Name string
		Lock bool
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByPos[session])
	if err != nil {
		t.Fatal(err)
	}
	want := []session{{"reconciler", false}, {"reconciler leader election", true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sessions (-want +got):\n%s", diff)
	}
}
