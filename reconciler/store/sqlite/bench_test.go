package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

// benchRecord is a record of the size the daemon keeps: two keys, a
// certificate, a status and a full history.
func benchRecord(name string) *store.Record {
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	r := &store.Record{
		Name:            name,
		AppliedRevision: "3f2a9c1d5e7b8a6f4c3d2e1f0a9b8c7d6e5f4a3b",
		AppliedAt:       at,
		Generation:      12,
		Keys: []store.WrappedKey{
			{Version: 4, Wrapped: make([]byte, 72), MasterVersion: 2, State: store.KeyCurrent},
			{Version: 5, Wrapped: make([]byte, 72), MasterVersion: 2, State: store.KeyNext},
		},
		Certificate: &store.Certificate{Serial: "3a:7f:00:c2", Fingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			NotBefore: at, NotAfter: at.Add(90 * 24 * time.Hour), State: store.CertInstalled},
		Status: store.AgentStatus{Phase: "Active", Generation: 12, SSL: true, Verified: true, Serial: "3a:7f:00:c2",
			NotAfter: at.Add(90 * 24 * time.Hour), KeyVersion: 4, Message: "serving TLS", ReportedAt: at},
		Watermarks: store.Watermarks{Sent: 1041, Received: 1038},
	}
	for i := range store.MaxHistory {
		r.AddHistory(store.Applied{Revision: fmt.Sprintf("%040d", i), Generation: uint64(i), At: at})
	}
	return r
}

func benchStore(b *testing.B) *Store {
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkUpdate is one read-modify-write of one instance, committed to
// disk (synchronous=FULL): the cost of recording a step of a reconcile.
func BenchmarkUpdate(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	seed := benchRecord("orders-db")
	if _, err := s.Update(ctx, "orders-db", func(r *store.Record) error { *r = *seed; return nil }); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Update(ctx, "orders-db", func(r *store.Record) error {
			r.Generation++
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpdateParallel is the controller's eight workers each
// recording a step of a different instance at once: their commits are
// grouped, so a write costs a fraction of BenchmarkUpdate's.
func BenchmarkUpdateParallel(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	seed := benchRecord("seed")
	var next atomic.Int64
	b.SetParallelism(4) // 8 goroutines on 2 cores, as the controller's default concurrency
	b.RunParallel(func(pb *testing.PB) {
		name := fmt.Sprintf("db-%02d", next.Add(1))
		for pb.Next() {
			if _, err := s.Update(ctx, name, func(r *store.Record) error {
				if r.Generation == 0 {
					*r = *seed
					r.Name = name
				}
				r.Generation++
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkList10000 reads a fleet of 10,000 instances, as a resync or
// `reconciler instance list` does.
func BenchmarkList10000(b *testing.B) {
	const fleet = 10_000
	ctx := context.Background()
	s := benchStore(b)
	// One transaction for the seed: 10,000 Updates would be 10,000 fsyncs.
	if err := s.write(ctx, func(ctx context.Context, tx querier) error {
		for i := range fleet {
			r := benchRecord(fmt.Sprintf("db-%05d", i))
			if err := store.Prepare(r, r.Name, time.Now()); err != nil {
				return err
			}
			if err := save(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		recs, err := s.List(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) != fleet {
			b.Fatalf("List returned %d records, want %d", len(recs), fleet)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/fleet, "ns/record")
}
