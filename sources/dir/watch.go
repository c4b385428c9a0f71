package dir

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls changed, at most once per settle period (100ms), after
// files under the root change, until ctx is done; then it returns nil.
// Directories created later are watched too. Chmod events are ignored.
// fsnotify misses changes on some file systems (NFS, some container
// mounts), so callers keep polling as a fallback; Watch returns an error
// only if watching cannot start at all.
func (s *Source) Watch(ctx context.Context, changed func(), log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", s.root, err)
	}
	defer w.Close()
	if err := addTree(w, s.root); err != nil {
		return fmt.Errorf("watch %s: %w", s.root, err)
	}
	const settle = 100 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			if ev.Op.Has(fsnotify.Create) {
				addTree(w, ev.Name) // a new directory; a file is a no-op
			}
			timer.Reset(settle)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.WarnContext(ctx, "file watch error; the poll still catches changes", "error", err)
		case <-timer.C:
			changed()
		}
	}
}

// addTree watches dir and every directory below it.
func addTree(w *fsnotify.Watcher, dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return w.Add(path)
		}
		return nil
	})
}
