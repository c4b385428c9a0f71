//go:build !unix

package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockDir takes the state directory's lock by creating the lock file
// exclusively, and returns its release, which removes it. Unlike flock,
// a lock file outlives a crashed process: the error on cancellation says
// how to clear it.
func lockDir(ctx context.Context, name string) (func(), error) {
	for {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			f.Close()
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("lock state: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock state: waiting for %s (remove it if no reconciler is running): %w", name, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// syncDir is a no-op where directories cannot be synced.
func syncDir(string) error { return nil }
