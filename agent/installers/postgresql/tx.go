package postgresql

import (
	"errors"
	"io/fs"
	"os"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// tx is installers.Files that also remembers each file's mode and owner
// before the change and puts them back on Rollback: Files restores the
// content through its previous copy, which is the agent's and 0600, so a
// rolled-back certificate or configuration would be unreadable to the
// server (and a restart onto it would fail).
type tx struct {
	installers.Files
	before map[string]fs.FileInfo
}

func newTx(owner string) *tx {
	return &tx{Files: installers.Files{Owner: owner}, before: map[string]fs.FileInfo{}}
}

func (t *tx) note(path string) {
	if _, ok := t.before[path]; ok {
		return
	}
	if info, err := os.Stat(path); err == nil {
		t.before[path] = info
	}
}

// Write is Files.Write, noting the file's mode and owner first.
func (t *tx) Write(path string, data []byte, mode fs.FileMode) (bool, error) {
	t.note(path)
	return t.Files.Write(path, data, mode)
}

// Remove is Files.Remove, noting the file's mode and owner first.
func (t *tx) Remove(path string) (bool, error) {
	t.note(path)
	return t.Files.Remove(path)
}

// Rollback is Files.Rollback, then the modes and owners as they were.
func (t *tx) Rollback() error {
	errs := []error{t.Files.Rollback()}
	for path, info := range t.before {
		if err := os.Chmod(path, info.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		if err := chownLike(path, info); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	t.before = map[string]fs.FileInfo{}
	return errors.Join(errs...)
}

// Commit is Files.Commit.
func (t *tx) Commit() {
	t.Files.Commit()
	t.before = map[string]fs.FileInfo{}
}
