package postgres_test

import (
	"context"
	"fmt"

	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/reconciler/store/postgres"
)

func ExampleOpen() {
	ctx := context.Background()
	dsn, drop := scratchDatabase() // yours comes from the configuration
	defer drop()

	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// Record the new key before the agent gets it: once Update returns it is
	// committed.
	rec, err := s.Update(ctx, "orders-db", func(r *store.Record) error {
		r.Keys = append(r.Keys, store.WrappedKey{Version: 1, Wrapped: []byte("vault:v1:..."), MasterVersion: 1, State: store.KeyCurrent})
		r.Generation++
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rec.Name, rec.Generation, rec.Keys)
	// Output: orders-db 1 [store.WrappedKey{version: 1, state: current, masterVersion: 1}]
}

func ExampleStore_Campaign() {
	ctx := context.Background()
	dsn, drop := scratchDatabase()
	defer drop()
	s, err := postgres.Open(ctx, dsn)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// Blocks while another replica leads.
	l, err := s.Campaign(ctx, "replica-a", "https://10.0.0.1:8443")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Resign(ctx)
	// Reconcile until l.Done() is closed; the writes are fenced on l.Epoch().
	who, err := s.Leader(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(who.ID, who.Address, who.Epoch, who.Held)
	// Output: replica-a https://10.0.0.1:8443 1 true
}

// scratchDatabase creates a database of the example's own on the test
// server and returns its DSN, and a function that drops it.
func scratchDatabase() (string, func()) {
	dsn, drop, err := postgres.CreateDatabase(context.Background(), "")
	if err != nil {
		panic(err)
	}
	return dsn, func() { drop() }
}
