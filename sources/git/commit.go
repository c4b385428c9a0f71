package git

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// ErrUncommittedChanges is wrapped by CommitFile's error when the file to
// commit differs, in the working tree or the index, from HEAD.
var ErrUncommittedChanges = errors.New("uncommitted changes")

// ErrBranchExists is wrapped by CommitFile's error when the branch to
// create already exists.
var ErrBranchExists = errors.New("branch already exists")

// CommitFile commits content as the file at path on a new branch, as
// git checkout -b branch, then editing path and git commit --only path,
// would in the working tree of the repository that holds repoDir. path is
// relative to repoDir, which may be a subdirectory of the working tree.
//
// The branch starts at the current HEAD and is checked out. Only path is
// committed: changes to other files, staged or not, stay as they were.
// CommitFile refuses, before changing anything, if the branch exists
// (ErrBranchExists) or if path has changes of its own that are not
// committed (ErrUncommittedChanges), which the commit would otherwise take
// along or overwrite. It returns the new commit's hash.
//
// The committer is the author. Hooks do not run and the commit is not
// signed.
func CommitFile(ctx context.Context, repoDir, branch, path string, content []byte, message string, author object.Signature) (hash string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("commit %s: %w", path, err)
	}
	w, err := openWorktree(repoDir)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", path, err)
	}
	rel, err := w.repoPath(path)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", path, err)
	}
	ref := plumbing.NewBranchReferenceName(branch)
	if err := ref.Validate(); err != nil || branch == "" {
		return "", fmt.Errorf("commit %s: %q is not a valid branch name: choose one such as ssl-enable-orders-db", path, branch)
	}
	if _, err := w.repo.Reference(ref, false); err == nil {
		return "", fmt.Errorf("commit %s: branch %s: %w: choose another name, or delete it with git branch -D %s", path, branch, ErrBranchExists, branch)
	}
	head, err := w.repo.Head()
	if err != nil {
		return "", fmt.Errorf("commit %s: read HEAD (a repository needs a first commit to branch from): %w", path, err)
	}
	parent, err := w.repo.CommitObject(head.Hash())
	if err != nil {
		return "", fmt.Errorf("commit %s: read HEAD commit: %w", path, err)
	}
	entry, err := w.unchanged(parent, rel)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", path, err)
	}

	// Every object first: until the branch exists, nothing is visible.
	store := w.repo.Storer
	blob, err := storeBlob(store, content)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", path, err)
	}
	root, err := parent.Tree()
	if err != nil {
		return "", fmt.Errorf("commit %s: read HEAD tree: %w", path, err)
	}
	tree, err := replaceBlob(store, root, strings.Split(rel, "/"), blob)
	if err != nil {
		return "", fmt.Errorf("commit %s: build tree: %w", path, err)
	}
	if !strings.HasSuffix(message, "\n") {
		message += "\n"
	}
	commit := &object.Commit{Author: author, Committer: author, Message: message, TreeHash: tree, ParentHashes: []plumbing.Hash{parent.Hash}}
	obj := store.NewEncodedObject()
	if err := commit.Encode(obj); err != nil {
		return "", fmt.Errorf("commit %s: encode commit: %w", path, err)
	}
	h, err := store.SetEncodedObject(obj)
	if err != nil {
		return "", fmt.Errorf("commit %s: write commit: %w", path, err)
	}

	// Then the branch, HEAD, the file and the index, undone in reverse if
	// one of them fails, so a failure leaves the checkout as it was.
	if err := store.SetReference(plumbing.NewHashReference(ref, h)); err != nil {
		return "", fmt.Errorf("commit %s: create branch %s: %w", path, branch, err)
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	undo = append(undo, func() { _ = store.RemoveReference(ref) })
	oldHead, err := store.Reference(plumbing.HEAD)
	if err != nil {
		return "", fmt.Errorf("commit %s: read HEAD: %w", path, err)
	}
	if err := store.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, ref)); err != nil {
		return "", fmt.Errorf("commit %s: check out %s: %w", path, branch, err)
	}
	undo = append(undo, func() { _ = store.SetReference(oldHead) })
	file := filepath.Join(w.wt.Filesystem.Root(), filepath.FromSlash(rel))
	old, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", path, err)
	}
	if err := writeFile(file, content, entry.Mode); err != nil {
		return "", fmt.Errorf("commit %s: %w", path, err)
	}
	undo = append(undo, func() { _ = writeFile(file, old, entry.Mode) })
	// Staging reads the file back, so the index and the commit agree only
	// if what is on disk is what was committed.
	if err := w.wt.AddWithOptions(&gogit.AddOptions{Path: filepath.FromSlash(rel), SkipStatus: true}); err != nil {
		return "", fmt.Errorf("commit %s: stage: %w", path, err)
	}
	if staged, err := w.stagedHash(rel); err != nil || staged != blob {
		return "", fmt.Errorf("commit %s: the staged file differs from the committed one; was it changed meanwhile?", path)
	}
	return h.String(), nil
}

// HeadBranch returns the short name of the branch checked out in the
// repository that holds repoDir, or "" when HEAD is detached.
func HeadBranch(repoDir string) (string, error) {
	repo, err := gogit.PlainOpenWithOptions(repoDir, &gogit.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return "", fmt.Errorf("open repository %s: %w", repoDir, err)
	}
	head, err := repo.Storer.Reference(plumbing.HEAD)
	if err != nil {
		return "", fmt.Errorf("read HEAD: %w", err)
	}
	if head.Type() == plumbing.SymbolicReference && head.Target().IsBranch() {
		return head.Target().Short(), nil
	}
	return "", nil
}

// Author returns who commits in the repository that holds repoDir, as git
// would name them: GIT_AUTHOR_NAME and GIT_AUTHOR_EMAIL, else author.name
// and author.email, else user.name and user.email from the repository's,
// the user's and the system's git configuration. When is now.
func Author(repoDir string) (object.Signature, error) {
	repo, err := gogit.PlainOpenWithOptions(repoDir, &gogit.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return object.Signature{}, fmt.Errorf("open repository %s: %w", repoDir, err)
	}
	cfg, err := repo.ConfigScoped(config.SystemScope)
	if err != nil {
		return object.Signature{}, fmt.Errorf("read git configuration: %w", err)
	}
	first := func(vs ...string) string {
		for _, v := range vs {
			if v != "" {
				return v
			}
		}
		return ""
	}
	sig := object.Signature{
		Name:  first(os.Getenv("GIT_AUTHOR_NAME"), cfg.Author.Name, cfg.User.Name),
		Email: first(os.Getenv("GIT_AUTHOR_EMAIL"), cfg.Author.Email, cfg.User.Email),
		When:  time.Now(),
	}
	if sig.Name == "" || sig.Email == "" {
		return object.Signature{}, errors.New(`no commit author: set one with git config user.name "Your Name" and git config user.email you@example.com`)
	}
	return sig, nil
}

// Push pushes branch to the remote named remote (origin, say) of the
// repository that holds repoDir, and makes the remote's branch its
// upstream, as git push -u would. WithAuth sets the credentials, checked
// against the remote URL's scheme as for Clone; secrets never appear in
// the error. Other options are ignored.
func Push(ctx context.Context, repoDir, remote, branch string, opts ...Option) error {
	o := collect(opts)
	repo, err := gogit.PlainOpenWithOptions(repoDir, &gogit.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return fmt.Errorf("push %s: open repository %s: %w", branch, repoDir, err)
	}
	r, err := repo.Remote(remote)
	if err != nil {
		return fmt.Errorf("push %s: no remote %q: add it with git remote add %s URL, or name another: %w", branch, remote, remote, err)
	}
	urls := r.Config().URLs
	if len(urls) == 0 {
		return fmt.Errorf("push %s: remote %q has no URL", branch, remote)
	}
	ep, err := transport.NewEndpoint(urls[0])
	if err != nil {
		// The parse error quotes the URL, which may hold a password.
		return fmt.Errorf("push %s: remote %q has an URL that is not a repository URL", branch, remote)
	}
	secrets := o.auth.secrets()
	if ep.Password != "" {
		secrets = append(secrets, ep.Password)
	}
	auth, err := o.auth.method(ep)
	if err != nil {
		return redact(fmt.Errorf("push %s to %s: configure credentials: %w", branch, remote, err), secrets)
	}
	ref := plumbing.NewBranchReferenceName(branch)
	err = r.PushContext(ctx, &gogit.PushOptions{
		RemoteName: remote,
		RefSpecs:   []config.RefSpec{config.RefSpec(ref + ":" + ref)},
		Auth:       auth,
		CABundle:   o.auth.CABundle,
	})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return redact(fmt.Errorf("push %s to %s: %w", branch, remote, err), secrets)
	}
	cfg, err := repo.Config()
	if err != nil {
		return fmt.Errorf("push %s: read repository configuration: %w", branch, err)
	}
	cfg.Branches[branch] = &config.Branch{Name: branch, Remote: remote, Merge: ref}
	if err := repo.SetConfig(cfg); err != nil {
		return fmt.Errorf("push %s: set its upstream: %w", branch, err)
	}
	return nil
}

// worktree is a repository with its working tree.
type worktree struct {
	repo   *gogit.Repository
	wt     *gogit.Worktree
	prefix string // repoDir in the working tree, slash-separated
}

func openWorktree(repoDir string) (*worktree, error) {
	repo, err := gogit.PlainOpenWithOptions(repoDir, &gogit.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", repoDir, err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		return nil, fmt.Errorf("open working tree of %s (a bare repository has none): %w", repoDir, err)
	}
	prefix, err := prefixOf(repo, repoDir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", repoDir, err)
	}
	return &worktree{repo: repo, wt: wt, prefix: prefix}, nil
}

// repoPath returns p, relative to the directory the worktree was opened
// at, relative to the top of the working tree.
func (w *worktree) repoPath(p string) (string, error) {
	clean, err := cleanSubdir(p)
	if err != nil || clean == "" {
		return "", fmt.Errorf("%q is not a file path inside the repository", p)
	}
	return path.Join(w.prefix, clean), nil
}

// unchanged returns the entry of rel in commit after checking that the
// index and the working tree hold the same content.
func (w *worktree) unchanged(commit *object.Commit, rel string) (*object.TreeEntry, error) {
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("read HEAD tree: %w", err)
	}
	entry, err := tree.FindEntry(rel)
	if err != nil {
		return nil, fmt.Errorf("%w: the file is not in HEAD: commit it first, then run again", ErrUncommittedChanges)
	}
	if entry.Mode != filemode.Regular && entry.Mode != filemode.Executable {
		return nil, fmt.Errorf("not a regular file in HEAD (mode %s)", entry.Mode)
	}
	idx, err := w.repo.Storer.Index()
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	staged, err := idx.Entry(rel)
	if err != nil || staged.Hash != entry.Hash {
		return nil, fmt.Errorf("%w in the index: commit them, or unstage them with git restore --staged %s, then run again", ErrUncommittedChanges, rel)
	}
	onDisk, err := os.ReadFile(filepath.Join(w.wt.Filesystem.Root(), filepath.FromSlash(rel)))
	if err != nil {
		return nil, fmt.Errorf("read file: %w", err)
	}
	if plumbing.ComputeHash(plumbing.BlobObject, onDisk) != entry.Hash {
		return nil, fmt.Errorf("%w in the working tree: commit or stash them (git stash), then run again", ErrUncommittedChanges)
	}
	return entry, nil
}

func (w *worktree) stagedHash(rel string) (plumbing.Hash, error) {
	idx, err := w.repo.Storer.Index()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	e, err := idx.Entry(rel)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return e.Hash, nil
}

func storeBlob(s storer.EncodedObjectStorer, content []byte) (plumbing.Hash, error) {
	obj := s.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(content)))
	wr, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write blob: %w", err)
	}
	if _, err := wr.Write(content); err != nil {
		wr.Close()
		return plumbing.ZeroHash, fmt.Errorf("write blob: %w", err)
	}
	if err := wr.Close(); err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write blob: %w", err)
	}
	h, err := s.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("write blob: %w", err)
	}
	return h, nil
}

// replaceBlob stores a copy of t whose file at the path parts points at
// blob, and the copies of the trees on the way, and returns the new tree's
// hash. The file must exist in t.
func replaceBlob(s storer.EncodedObjectStorer, t *object.Tree, parts []string, blob plumbing.Hash) (plumbing.Hash, error) {
	entries := make([]object.TreeEntry, len(t.Entries))
	copy(entries, t.Entries)
	i := 0
	for i < len(entries) && entries[i].Name != parts[0] {
		i++
	}
	if i == len(entries) {
		return plumbing.ZeroHash, fmt.Errorf("%s: %w", parts[0], object.ErrEntryNotFound)
	}
	if len(parts) == 1 {
		entries[i].Hash = blob
	} else {
		sub, err := object.GetTree(s, entries[i].Hash)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if entries[i].Hash, err = replaceBlob(s, sub, parts[1:], blob); err != nil {
			return plumbing.ZeroHash, err
		}
	}
	obj := s.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return s.SetEncodedObject(obj)
}

// writeFile replaces the file at name with content through a temporary
// file and a rename, so a reader never sees half of it.
func writeFile(name string, content []byte, mode filemode.FileMode) error {
	perm := os.FileMode(0o644)
	if info, err := os.Stat(name); err == nil {
		perm = info.Mode().Perm()
	} else if mode == filemode.Executable {
		perm = 0o755
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
