//go:build unix

package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// lockInUse takes the state directory's in-use lock, name, and returns the
// open file that holds it; closing the file releases it, and so does the
// kernel when the process dies.
//
// Every open Provider holds it shared (exclusive false), waiting while a
// KEK change holds it. ChangeKEK takes it exclusive (exclusive true) and
// does not wait: it fails with ErrInUse while any Provider, in this
// process or another, has the directory open.
func lockInUse(ctx context.Context, name string, exclusive bool) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock state in use: %w", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock state in use: %w", err)
		}
		if exclusive && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, ErrInUse
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock state in use: waiting for a KEK change to finish (%s): %w", name, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
