package dir_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/reconciler-dev/reconciler/sources/dir"
)

func ExampleNew() {
	// A working tree with one instance file.
	root, err := os.MkdirTemp("", "fleet")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	if err := os.MkdirAll(filepath.Join(root, "instances"), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "instances", "orders-db.yaml"), []byte("ssl: enabled\n"), 0o644); err != nil {
		log.Fatal(err)
	}

	src, err := dir.New(root)
	if err != nil {
		log.Fatal(err)
	}
	snap, err := src.Snapshot(context.Background(), "")
	if err != nil {
		log.Fatal(err)
	}
	data, err := fs.ReadFile(snap.FS, "instances/orders-db.yaml")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %s", snap.Revision, data)
	// Output: worktree: ssl: enabled
}
