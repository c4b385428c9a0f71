package installers

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/reconciler-dev/reconciler/agent/atomicfile"
)

// PreviousSuffix names the copy of a file's previous version, kept beside
// it so an operator (or a rollback) can restore it.
const PreviousSuffix = ".reconciler-prev"

// Files writes an installer's files as one transaction: every Write and
// Remove can be undone with Rollback until Commit. A Files is used by one
// goroutine.
type Files struct {
	// Owner is the user that must own the files (the datastore's user,
	// which must read the key); "" leaves them to the agent's user.
	Owner string

	undo []func() error
	uid  int
	gid  int
	set  bool
}

// Write replaces path with data, atomically (temporary file in the same
// directory, fsync, rename, directory fsync), with mode and the Owner. The
// previous content, if any, is kept at path+PreviousSuffix. It reports
// whether anything changed: the same content and mode is left alone.
func (f *Files) Write(path string, data []byte, mode fs.FileMode) (bool, error) {
	old, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("read %s: %w", path, err)
	}
	if existed {
		info, err := os.Stat(path)
		if err != nil {
			return false, fmt.Errorf("stat %s: %w", path, err)
		}
		if info.Mode().Perm() == mode && bytes.Equal(old, data) && f.ownedRight(info) {
			return false, nil
		}
		// The copy keeps the original's mode and owner, so a rollback
		// gives the server back a file it can still read.
		if err := atomicfile.Write(path+PreviousSuffix, old, info.Mode().Perm(), fileUID(info), fileGID(info)); err != nil {
			return false, err
		}
	}
	uid, gid, err := f.ids()
	if err != nil {
		return false, err
	}
	if err := atomicfile.Write(path, data, mode, uid, gid); err != nil {
		return false, err
	}
	f.undo = append(f.undo, func() error {
		if !existed {
			return removeIfExists(path)
		}
		return os.Rename(path+PreviousSuffix, path)
	})
	return true, nil
}

// Remove moves path to path+PreviousSuffix; a missing file is no change.
func (f *Files) Remove(path string) (bool, error) {
	if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err := os.Rename(path, path+PreviousSuffix); err != nil {
		return false, fmt.Errorf("remove %s: %w", path, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		return false, err
	}
	f.undo = append(f.undo, func() error { return os.Rename(path+PreviousSuffix, path) })
	return true, nil
}

// Rollback restores every file changed since the last Commit, newest
// first, and reports every failure.
func (f *Files) Rollback() error {
	var errs []error
	for i := len(f.undo) - 1; i >= 0; i-- {
		if err := f.undo[i](); err != nil {
			errs = append(errs, err)
		}
	}
	f.undo = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("roll back files: %w", err)
	}
	return nil
}

// Commit makes the changes final: Rollback no longer undoes them. The
// previous versions stay on disk.
func (f *Files) Commit() { f.undo = nil }

// Changed reports whether anything was written or removed since the last
// Commit or Rollback.
func (f *Files) Changed() bool { return len(f.undo) > 0 }

func (f *Files) ids() (uid, gid int, err error) {
	if f.Owner == "" {
		return -1, -1, nil
	}
	if !f.set {
		u, err := user.Lookup(f.Owner)
		if err != nil {
			return 0, 0, fmt.Errorf("look up file owner %q: %w", f.Owner, err)
		}
		f.uid, _ = strconv.Atoi(u.Uid)
		f.gid, _ = strconv.Atoi(u.Gid)
		f.set = true
	}
	return f.uid, f.gid, nil
}

func (f *Files) ownedRight(info fs.FileInfo) bool {
	if f.Owner == "" {
		return true
	}
	uid, _, err := f.ids()
	if err != nil {
		return false
	}
	return fileUID(info) == uid
}

func removeIfExists(path string) error { return atomicfile.Remove(path) }
