package sqlite_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
)

func ExampleOpen() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "reconciler")
	defer os.RemoveAll(dir)

	s, err := sqlite.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// Record the new key before the agent gets it: once Update returns it is
	// on disk.
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
