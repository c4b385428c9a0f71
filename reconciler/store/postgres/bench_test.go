package postgres

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

// The benchmarks mirror store/sqlite's, of the same names and records, so
// that benchstat compares the two stores.

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

// BenchmarkUpdate is one read-modify-write of one instance, committed
// (synchronous_commit as the server has it, on by default): the cost of
// recording a step of a reconcile.
func BenchmarkUpdate(b *testing.B) {
	for _, c := range []struct {
		name string
		lead bool
	}{{"unfenced", false}, {"leading", true}} {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s := openStore(b, freshDatabase(b))
			if c.lead {
				if _, err := s.Campaign(ctx, "bench", ""); err != nil {
					b.Fatal(err)
				}
			}
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
		})
	}
}

// BenchmarkList10000 reads a fleet of 10,000 instances, as a resync or
// `reconciler instance list` does.
func BenchmarkList10000(b *testing.B) {
	const fleet = 10_000
	ctx := context.Background()
	s := openStore(b, freshDatabase(b))
	// One transaction for the seed, in batches of a hundred records.
	if err := s.write(ctx, "seed", func(*pgx.Batch) {}, func(ctx context.Context, tx pgx.Tx) error {
		batch := &pgx.Batch{}
		for i := range fleet {
			r := benchRecord(fmt.Sprintf("db-%05d", i))
			if err := store.Prepare(r, r.Name, time.Now()); err != nil {
				return err
			}
			if err := queueSave(batch, r, nil); err != nil {
				return err
			}
			if i%100 == 99 {
				if err := tx.SendBatch(ctx, batch).Close(); err != nil {
					return err
				}
				batch = &pgx.Batch{}
			}
		}
		return tx.SendBatch(ctx, batch).Close()
	}); err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
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
