package sources

import (
	"context"
	"io/fs"
)

// Snapshot is the fleet repository's content at one revision.
type Snapshot struct {
	// Revision names what FS holds: a commit hash for git, "worktree" for a
	// directory. It is shown to users and recorded as the applied revision.
	Revision string
	// FS is rooted at the fleet root (the directory that holds instances/ and
	// policies/). It is read-only and safe for concurrent use. A commit's
	// FS never changes; a directory's is the live directory, which may.
	FS fs.FS
}

// Source gives read access to the fleet repository.
//
// Snapshot resolves rev (an implementation-defined expression; "" means the
// source's default: the working tree for a directory, HEAD for git) and
// returns the content at it. It must not block past ctx's cancellation.
type Source interface {
	Snapshot(ctx context.Context, rev string) (*Snapshot, error)
}

// ChangeLister is implemented by sources with history.
//
// Changed returns the slash-separated paths, relative to the fleet root and
// sorted, whose content differs between revisions from and to (added,
// modified, deleted; a rename lists both names).
type ChangeLister interface {
	Changed(ctx context.Context, from, to string) ([]string, error)
}

// Fetcher is implemented by sources with a remote.
//
// Fetch brings the local copy up to date with the remote, so that the
// next Snapshot sees what was pushed. It must not block past ctx's
// cancellation, and a failed fetch leaves the local copy as it was.
type Fetcher interface {
	Fetch(ctx context.Context) error
}
