package dir

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatchSeesChangesInNewDirectories(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "instances"), 0o755)
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	changes := make(chan struct{}, 10)
	done := make(chan error, 1)
	go func() { done <- s.Watch(ctx, func() { changes <- struct{}{} }, nil) }()
	time.Sleep(100 * time.Millisecond) // the watch is set up

	expect := func(what string) {
		t.Helper()
		select {
		case <-changes:
		case <-time.After(10 * time.Second):
			t.Fatalf("no change reported after %s", what)
		}
	}
	os.WriteFile(filepath.Join(root, "instances", "a.yaml"), []byte("x"), 0o644)
	expect("writing a file")
	os.MkdirAll(filepath.Join(root, "instances", "prod"), 0o755)
	expect("making a directory")
	time.Sleep(100 * time.Millisecond)
	os.WriteFile(filepath.Join(root, "instances", "prod", "b.yaml"), []byte("y"), 0o644)
	expect("writing a file in the new directory")

	os.Chmod(filepath.Join(root, "instances", "a.yaml"), 0o600)
	select {
	case <-changes:
		t.Error("a chmod was reported as a change")
	case <-time.After(400 * time.Millisecond):
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch after cancel: %v", err)
	}
}
