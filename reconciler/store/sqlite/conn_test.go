package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

func TestConnectionsAreConfigured(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pragmas := func(q querier) map[string]string {
		got := map[string]string{}
		for _, p := range []string{"journal_mode", "synchronous", "foreign_keys", "busy_timeout", "query_only"} {
			rows, err := q.QueryContext(context.Background(), "PRAGMA "+p)
			if err != nil {
				t.Fatalf("PRAGMA %s: %v", p, err)
			}
			for rows.Next() {
				var v string
				if err := rows.Scan(&v); err != nil {
					t.Fatal(err)
				}
				got[p] = v
			}
			rows.Close()
		}
		return got
	}
	cases := []struct {
		name string
		q    querier
		want map[string]string
	}{
		{"writer", s.writer, map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000", "query_only": "0"}},
		{"reader", s.reader, map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000", "query_only": "1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, pragmas(c.q)); diff != "" {
				t.Errorf("pragmas (-want +got):\n%s", diff)
			}
		})
	}
}

// lockedStore opens a store and has another connection, as another
// process would, hold its write lock until unlock is called.
func lockedStore(t *testing.T) (s *Store, unlock func()) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	conn, err := raw(t, path).Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	return s, func() {
		if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
			t.Errorf("COMMIT: %v", err)
		}
	}
}

func TestUpdateWaitsForAnotherProcess(t *testing.T) {
	// Another process (here another connection, as sqlite3 would be) holds
	// the write lock for a while: Update waits for it instead of failing.
	s, unlock := lockedStore(t)
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(200 * time.Millisecond)
		unlock()
	}()
	start := time.Now()
	got, err := s.Update(context.Background(), "orders-db", func(r *store.Record) error { r.Generation++; return nil })
	<-released
	if err != nil || got.Generation != 1 {
		t.Fatalf("Update while another process writes = %v, %v", got, err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond {
		t.Errorf("Update returned after %s, before the other writer let go", waited)
	}
}

// TestGroupCommit queues writes behind another process's lock, so that
// they are committed together, and checks that each is applied (or, the
// one whose fn fails, not) as if it were alone.
func TestGroupCommit(t *testing.T) {
	s, unlock := lockedStore(t)
	const writers = 20
	errFn := errors.New("fn refused")
	results := make([]error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, results[i] = s.Update(context.Background(), fmt.Sprintf("db-%02d", i%5), func(r *store.Record) error {
				if i == 7 {
					r.Generation = 1000 // not written: fn fails
					return errFn
				}
				r.Generation++
				r.AddHistory(store.Applied{Revision: fmt.Sprint(i), Generation: r.Generation})
				return nil
			})
		}()
	}
	time.Sleep(200 * time.Millisecond) // the first write waits for the lock, the rest for it
	before := s.commits.Load()
	unlock()
	wg.Wait()
	for i, err := range results {
		if want := error(nil); i == 7 {
			if !errors.Is(err, errFn) {
				t.Errorf("write %d: err %v, want its fn's error", i, err)
			}
		} else if err != want {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if commits := s.commits.Load() - before; commits >= writers-1 {
		t.Errorf("%d writes took %d commits: not grouped", writers-1, commits)
	}
	recs, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, r := range recs {
		got[r.Name] = r.Generation
		if len(r.History) != int(r.Generation) {
			t.Errorf("%s: generation %d with %d history entries", r.Name, r.Generation, len(r.History))
		}
	}
	want := map[string]uint64{"db-00": 4, "db-01": 4, "db-02": 3, "db-03": 4, "db-04": 4} // write 7 (db-02) failed
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("generations after the group commit (-want +got):\n%s", diff)
	}
}

// TestWriteGivenUpBeforeItsTurn checks that a write whose context ends
// while it waits is not made.
func TestWriteGivenUpBeforeItsTurn(t *testing.T) {
	s, unlock := lockedStore(t)
	first := make(chan error, 1)
	go func() {
		_, err := s.Update(context.Background(), "first", func(r *store.Record) error { r.Generation++; return nil })
		first <- err
	}()
	time.Sleep(100 * time.Millisecond) // first holds the committer, waiting for the lock
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := s.Update(ctx, "second", func(r *store.Record) error { r.Generation++; return nil })
		second <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Errorf("a write given up while it waited: err %v, want context.Canceled", err)
	}
	unlock()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "second"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of the write given up: %v, want ErrNotFound", err)
	}
}

// TestStatementsArePrepared checks that every query of the store prepares
// against the real schema: one that did not would run, slower, unprepared.
func TestStatementsArePrepared(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		name    string
		stmts   statements
		queries []string
	}{{"writer", s.writeStmts, writeQueries()}, {"readers", s.readStmts, readQueries()}} {
		for _, q := range c.queries {
			if c.stmts[q] == nil {
				t.Errorf("%s: not prepared: %s", c.name, q)
			}
		}
	}
}

// TestAPanicInFnReachesItsCaller checks that a panic in Update's fn,
// which runs on the committer, panics in the caller's goroutine, writes
// nothing, and leaves the writes committed with it and the store working.
func TestAPanicInFnReachesItsCaller(t *testing.T) {
	s, unlock := lockedStore(t)
	var wg sync.WaitGroup
	var recovered any
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer func() { recovered = recover() }()
		s.Update(context.Background(), "bad", func(r *store.Record) error { panic("fn failed") })
	}()
	var err error
	go func() {
		defer wg.Done()
		_, err = s.Update(context.Background(), "good", func(r *store.Record) error { r.Generation = 7; return nil })
	}()
	time.Sleep(100 * time.Millisecond) // both wait behind the lock, to be committed together
	unlock()
	wg.Wait()
	if recovered != "fn failed" {
		t.Errorf("the caller recovered %v, want fn's panic", recovered)
	}
	if err != nil {
		t.Errorf("the write committed with the panicking one: %v", err)
	}
	if _, err := s.Get(context.Background(), "bad"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of the panicking write: %v, want ErrNotFound", err)
	}
	if r, err := s.Get(context.Background(), "good"); err != nil || r.Generation != 7 {
		t.Errorf("Get of the write beside it = %v, %v", r, err)
	}
	if _, err := s.Update(context.Background(), "after", func(r *store.Record) error { return nil }); err != nil {
		t.Errorf("Update after the panic: %v", err)
	}
}
