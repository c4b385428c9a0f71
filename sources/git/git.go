package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"

	"github.com/reconciler-dev/reconciler/sources"
)

// ErrUnknownRevision is wrapped by the errors of Snapshot and Changed when a
// revision names no commit.
var ErrUnknownRevision = errors.New("unknown revision")

var (
	_ sources.Source       = (*Source)(nil)
	_ sources.ChangeLister = (*Source)(nil)
)

// Source reads a fleet from a git repository's commits. It is safe for
// concurrent use, and so are the file systems of its snapshots.
type Source struct {
	// mu serializes every use of repo, including reads through snapshot
	// file systems: go-git's object storage is not safe for concurrent use.
	mu     sync.Mutex
	repo   *gogit.Repository
	prefix string // the fleet root in the repository, slash-separated; "" for the top

	// Set for a clone only.
	url    string
	remote *remote

	log *slog.Logger
}

// Open returns a Source for the local repository that contains dir, found
// as git -C dir would by looking for .git in dir and its parents. If dir is
// a subdirectory of the repository's working tree, snapshots and change
// lists are rooted there (joined with WithSubdir, if given). dir may also
// be a bare repository. Open reads refs and objects anew on every call, so
// commits made and fetched by the user's git are seen.
//
// Snapshots read commits, never the working tree: uncommitted edits are
// not seen. Use sources/dir for those.
func Open(ctx context.Context, dir string, opts ...Option) (*Source, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	o := collect(opts)
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("open repository %s: not a directory", dir)
	}
	repo, err := gogit.PlainOpenWithOptions(dir, &gogit.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	prefix, err := prefixOf(repo, dir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	sub, err := cleanSubdir(o.subdir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	return &Source{repo: repo, prefix: path.Join(prefix, sub), log: o.log}, nil
}

// prefixOf returns where dir lies in repo's working tree, slash-separated,
// "" for its top or for a bare repository.
func prefixOf(repo *gogit.Repository, dir string) (string, error) {
	wt, err := repo.Worktree()
	if errors.Is(err, gogit.ErrIsBareRepository) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	// Resolve links on both sides: the repository may have been found
	// through a symbolic link (macOS's /tmp, for one).
	top, err := filepath.EvalSymlinks(wt.Filesystem.Root())
	if err != nil {
		return "", err
	}
	abs, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", err
	}
	if abs, err = filepath.Abs(abs); err != nil {
		return "", err
	}
	rel, err := filepath.Rel(top, abs)
	if err != nil {
		return "", err
	}
	return cleanSubdir(rel)
}

func collect(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Snapshot returns the fleet at rev, read from the commit's tree without a
// checkout. rev is anything git rev-parse takes for a commit, short of the
// more exotic forms: "" or HEAD, a branch, a tag (annotated tags are peeled
// to their commit), a full or abbreviated commit hash, and ancestry such
// as HEAD~1 or main^. The Snapshot's Revision is the full commit hash.
//
// A fleet root (see WithSubdir) missing at rev is an error.
func (s *Source) Snapshot(ctx context.Context, rev string) (*sources.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", orHEAD(rev), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	commit, err := s.resolve(rev)
	if err != nil {
		return nil, err
	}
	tree, err := s.tree(commit)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", orHEAD(rev), err)
	}
	if tree == nil {
		// The fleet root did not exist yet at this commit: an empty fleet,
		// as Changed reads it too (a merge request adding the fleet
		// compares it with nothing).
		return &sources.Snapshot{Revision: commit.Hash.String(), FS: emptyFS{}}, nil
	}
	fsys := &treeFS{mu: &s.mu, store: s.repo.Storer, root: tree, modTime: commit.Committer.When}
	return &sources.Snapshot{Revision: commit.Hash.String(), FS: fsys}, nil
}

// Changed returns the paths under the fleet root, relative to it and
// sorted, whose content or mode differs between the commits from and to:
// added, modified and deleted files; a rename lists both names. A fleet
// root missing at one of the revisions counts as empty there. Only trees
// are compared: no file content is read.
func (s *Source) Changed(ctx context.Context, from, to string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list changes: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var trees [2]*object.Tree
	for i, rev := range []string{from, to} {
		commit, err := s.resolve(rev)
		if err != nil {
			return nil, fmt.Errorf("list changes: %w", err)
		}
		if trees[i], err = s.tree(commit); err != nil {
			return nil, fmt.Errorf("list changes: %w", err)
		}
	}
	// Without rename detection, a rename is a delete and an add, and no
	// blob is read. A nil tree diffs as an empty one.
	changes, err := object.DiffTreeWithOptions(ctx, trees[0], trees[1], &object.DiffTreeOptions{})
	if err != nil {
		if errors.Is(err, object.ErrCanceled) {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("list changes %s..%s: %w", orHEAD(from), orHEAD(to), err)
	}
	var paths []string
	for _, c := range changes {
		for _, name := range []string{c.From.Name, c.To.Name} {
			if name != "" {
				paths = append(paths, name)
			}
		}
	}
	slices.Sort(paths)
	return slices.Compact(paths), nil
}

// resolve returns the commit rev names. The caller holds s.mu.
func (s *Source) resolve(rev string) (*object.Commit, error) {
	rev = orHEAD(rev)
	// go-git reads the list of pack files once. A local repository gets
	// new ones from the git the user runs (fetch, gc), which a long-lived
	// Source must see; a clone gets them only from s.fetch, which go-git
	// indexes as it writes them.
	if st, ok := s.repo.Storer.(*filesystem.Storage); ok && s.remote == nil {
		st.Reindex()
	}
	hash, err := s.repo.ResolveRevision(plumbing.Revision(rev))
	if err == nil {
		var commit *object.Commit
		if commit, err = s.repo.CommitObject(*hash); err == nil {
			return commit, nil
		}
	}
	// go-git reports a name it cannot find as "reference not found", and
	// an ancestor beyond the first commit (HEAD~99) as io.EOF.
	if errors.Is(err, plumbing.ErrReferenceNotFound) || errors.Is(err, plumbing.ErrObjectNotFound) || errors.Is(err, io.EOF) {
		if s.url != "" {
			return nil, fmt.Errorf("resolve revision %q: %w: check the name; it is not on %s", rev, ErrUnknownRevision, s.url)
		}
		return nil, fmt.Errorf("resolve revision %q: %w: check the name, or run git fetch if it is only on a remote", rev, ErrUnknownRevision)
	}
	return nil, fmt.Errorf("resolve revision %q: %w", rev, err)
}

// tree returns the fleet root's tree in commit, nil if commit has none.
// The caller holds s.mu.
func (s *Source) tree(commit *object.Commit) (*object.Tree, error) {
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of commit %s: %w", commit.Hash, err)
	}
	if s.prefix == "" {
		return tree, nil
	}
	sub, err := tree.Tree(s.prefix)
	if errors.Is(err, object.ErrDirectoryNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read directory %s of commit %s: %w", s.prefix, commit.Hash, err)
	}
	return sub, nil
}

// orHEAD returns rev, or HEAD for "".
func orHEAD(rev string) string {
	if rev == "" {
		return "HEAD"
	}
	return rev
}

// emptyFS is a fleet root with nothing in it.
type emptyFS struct{}

func (emptyFS) Open(name string) (fs.File, error) {
	switch {
	case !fs.ValidPath(name):
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	case name != ".":
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return emptyDir{}, nil
}

// emptyDir is emptyFS's root directory.
type emptyDir struct{}

func (emptyDir) Stat() (fs.FileInfo, error) { return emptyDir{}, nil }
func (emptyDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: ".", Err: fs.ErrInvalid}
}
func (emptyDir) Close() error { return nil }
func (emptyDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if n > 0 {
		return nil, io.EOF
	}
	return nil, nil
}
func (emptyDir) Name() string       { return "." }
func (emptyDir) Size() int64        { return 0 }
func (emptyDir) Mode() fs.FileMode  { return fs.ModeDir | 0o555 }
func (emptyDir) ModTime() time.Time { return time.Time{} }
func (emptyDir) IsDir() bool        { return true }
func (emptyDir) Sys() any           { return nil }
