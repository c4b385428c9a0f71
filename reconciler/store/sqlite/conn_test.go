package sqlite

import (
	"context"
	"path/filepath"
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

func TestUpdateWaitsForAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Another process (here another connection, as sqlite3 would be) holds
	// the write lock for a while: Update waits for it instead of failing.
	other := raw(t, path)
	conn, err := other.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(200 * time.Millisecond)
		if _, err := conn.ExecContext(context.Background(), "COMMIT"); err != nil {
			t.Errorf("COMMIT: %v", err)
		}
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
