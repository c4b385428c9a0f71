package dir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/reconciler-dev/reconciler/sources"
)

// Revision is the revision of every Snapshot of a directory.
const Revision = "worktree"

// ErrNoRevisions is returned by Snapshot when asked for a revision other
// than the working tree.
var ErrNoRevisions = errors.New("a directory has no revisions: point the source at a git repository to read one")

var _ sources.Source = (*Source)(nil)

// Source reads a fleet from a local directory.
type Source struct {
	root string
}

// New returns a Source for the directory root, which must exist. A relative
// root is made absolute now, so a later change of the process's working
// directory does not move the source.
func New(root string) (*Source, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open directory %s: %w", root, err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("open directory %s: not a directory", abs)
	}
	return &Source{root: abs}, nil
}

// Root returns the absolute path of the directory.
func (s *Source) Root() string { return s.root }

// Snapshot returns the directory as it is on disk. rev must be "" (or
// Revision): any other revision wraps ErrNoRevisions.
//
// The returned FS refuses to follow symbolic links out of the directory. It
// holds an open handle on the directory, released when the Snapshot is
// garbage collected.
func (s *Source) Snapshot(ctx context.Context, rev string) (*sources.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", s.root, err)
	}
	if rev != "" && rev != Revision {
		return nil, fmt.Errorf("snapshot %s at revision %q: %w", s.root, rev, ErrNoRevisions)
	}
	// os.Root resolves every path, symbolic links included, inside root
	// and fails on anything that would leave it, which os.DirFS does not.
	root, err := os.OpenRoot(s.root)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", s.root, err)
	}
	return &sources.Snapshot{Revision: Revision, FS: root.FS()}, nil
}
