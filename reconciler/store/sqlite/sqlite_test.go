package sqlite_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/reconciler/store/storetest"
)

func openAt(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store {
			return openAt(t, filepath.Join(t.TempDir(), "state.db"))
		},
		func(t *testing.T, s store.Store) store.Store {
			db := s.(*sqlite.Store)
			if err := db.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openAt(t, db.Path())
		})
}

func TestFileIsCreatedPrivate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := openAt(t, path)
	if _, err := s.Update(context.Background(), "orders-db", func(r *store.Record) error {
		r.Generation = 1
		return nil
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("stat: %v", err)
			continue
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", filepath.Base(p), got)
		}
	}
}

func TestOpenErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database. ", 512)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		path string
	}{
		{"missing directory", filepath.Join(dir, "no", "such", "state.db")},
		{"not a database", garbage},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := sqlite.Open(context.Background(), c.path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), "open state store "+c.path+": ") {
				t.Errorf("error %q does not start by naming the file", err)
			}
			if errors.Is(err, store.ErrNewerSchema) {
				t.Errorf("error %q claims a newer schema", err)
			}
		})
	}
}
