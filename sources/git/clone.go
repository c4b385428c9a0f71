package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// remoteName is the name of the one remote of a cached clone.
const remoteName = "origin"

// refSpecs mirror the remote's branches and tags under their own names, so
// that "main", "v1.2" and "main~1" resolve in the bare cache as they do in
// the remote. Other refs (pull requests, notes) are not fetched.
var refSpecs = []config.RefSpec{
	"+refs/heads/*:refs/heads/*",
	"+refs/tags/*:refs/tags/*",
}

// remote is how a clone reaches its origin.
type remote struct {
	auth     transport.AuthMethod
	caBundle []byte
	secrets  []string // kept out of errors
}

// Clone returns a Source for the remote repository at rawURL: an https://,
// http://, ssh://, git:// or file:// URL, or scp-like user@host:path.
//
// The repository is kept as a bare clone in a cache directory (see
// WithCacheDir), one per URL. The first Clone of a URL clones it; later
// ones reuse the cache and fetch. A cache that cannot be opened, holds
// another remote or misses the objects of its HEAD is removed and cloned
// again. Branches and tags are fetched under their own names, and HEAD
// follows the remote's default branch. Two Sources must not fetch into the
// same clone at once: concurrent processes need their own cache
// directories.
//
// Credentials go in WithAuth, never in the URL: an http(s) URL with user
// information, or any URL with a password, is refused, so that no secret
// reaches the cache path, logs or errors.
func Clone(ctx context.Context, rawURL string, opts ...Option) (*Source, error) {
	o := collect(opts)
	s, dir, err := newClone(rawURL, o)
	if err != nil {
		return nil, redact(err, o.auth.secrets())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.openOrClone(ctx, dir); err != nil {
		return nil, redact(fmt.Errorf("clone %s: %w", s.url, err), s.remote.secrets)
	}
	return s, nil
}

// newClone checks rawURL and the options and returns the Source to fill
// and its cache directory.
func newClone(rawURL string, o options) (*Source, string, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		// The parse error quotes the URL, which may hold a password.
		return nil, "", errors.New("clone: not a repository URL: want https://, ssh://, git://, file:// or user@host:path")
	}
	// An https user name is often a token; an ssh one (git@) is not.
	if ep.Password != "" || ((ep.Protocol == "http" || ep.Protocol == "https") && ep.User != "") {
		shown := *ep
		shown.User, shown.Password = "", ""
		return nil, "", fmt.Errorf("clone %s: credentials in the URL are not supported: pass them with WithAuth", shown.String())
	}
	sub, err := cleanSubdir(o.subdir)
	if err != nil {
		return nil, "", fmt.Errorf("clone %s: %w", rawURL, err)
	}
	auth, err := o.auth.method(ep)
	if err != nil {
		return nil, "", fmt.Errorf("clone %s: configure credentials: %w", rawURL, err)
	}
	if ep.Protocol == "http" && auth != nil {
		o.log.Warn("credentials are sent unencrypted over http: use https", "url", rawURL)
	}
	root := o.cacheDir
	if root == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return nil, "", fmt.Errorf("clone %s: find cache directory: %w", rawURL, err)
		}
		root = filepath.Join(cache, "reconciler", "git")
	}
	sum := sha256.Sum256([]byte(rawURL))
	s := &Source{
		prefix: sub,
		url:    rawURL,
		remote: &remote{auth: auth, caBundle: o.auth.CABundle, secrets: o.auth.secrets()},
		log:    o.log.With("url", rawURL),
	}
	return s, filepath.Join(root, hex.EncodeToString(sum[:])), nil
}

// openOrClone sets s.repo to the cache at dir, fetched, or to a fresh
// clone there. The caller holds s.mu.
func (s *Source) openOrClone(ctx context.Context, dir string) error {
	repo, err := s.openCache(dir)
	switch {
	case err == nil:
		s.repo = repo
		return s.fetch(ctx)
	case errors.Is(err, fs.ErrNotExist):
	default:
		s.log.Warn("removing unusable repository cache", "dir", dir, "err", err)
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("remove repository cache: %w", err)
		}
	}
	return s.clone(ctx, dir)
}

// openCache opens the cached clone at dir and checks that it is whole
// enough to fetch into. A missing cache wraps fs.ErrNotExist.
func (s *Source) openCache(dir string) (*gogit.Repository, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	repo, err := gogit.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	r, err := repo.Remote(remoteName)
	if err != nil {
		return nil, fmt.Errorf("read remote: %w", err)
	}
	if urls := r.Config().URLs; len(urls) != 1 || urls[0] != s.url {
		return nil, fmt.Errorf("cache is of another remote %q", urls)
	}
	head, err := repo.Head()
	if err != nil {
		return nil, fmt.Errorf("read HEAD: %w", err)
	}
	commit, err := repo.CommitObject(head.Hash())
	if err != nil {
		return nil, fmt.Errorf("read HEAD commit: %w", err)
	}
	if _, err := commit.Tree(); err != nil {
		return nil, fmt.Errorf("read HEAD tree: %w", err)
	}
	return repo, nil
}

// clone fetches the remote into a new bare repository at dir. It clones
// into a temporary directory beside dir and renames it into place, so an
// interrupted clone never leaves a half-filled cache. The caller holds
// s.mu.
func (s *Source) clone(ctx context.Context, dir string) (err error) {
	s.log.Info("cloning repository", "dir", dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	// Leftovers of clones interrupted by a crash.
	stale, _ := filepath.Glob(dir + ".tmp-*")
	for _, p := range stale {
		os.RemoveAll(p)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create cache directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	repo, err := gogit.PlainInit(tmp, true)
	if err != nil {
		return fmt.Errorf("init repository: %w", err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{s.url}, Fetch: refSpecs}); err != nil {
		return fmt.Errorf("configure remote: %w", err)
	}
	s.repo = repo
	if err := s.fetch(ctx); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("move clone into the cache: %w", err)
	}
	// The handle's paths point into tmp, which is gone.
	if s.repo, err = gogit.PlainOpen(dir); err != nil {
		return fmt.Errorf("open repository: %w", err)
	}
	return nil
}

// Fetch brings the cached clone up to date with the remote: new commits,
// moved and deleted branches and tags, and the remote's default branch as
// HEAD. Snapshots taken before stay valid; reads through them wait while
// Fetch runs. For a Source from Open, which reads the local repository as
// it is, Fetch does nothing.
func (s *Source) Fetch(ctx context.Context) error {
	if s.remote == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fetch(ctx); err != nil {
		return redact(fmt.Errorf("fetch %s: %w", s.url, err), s.remote.secrets)
	}
	return nil
}

// fetch updates s.repo from the remote. The caller holds s.mu.
func (s *Source) fetch(ctx context.Context) error {
	start := time.Now()
	r, err := s.repo.Remote(remoteName)
	if err != nil {
		return fmt.Errorf("read remote: %w", err)
	}
	// A fetch does not tell which branch the remote's HEAD names; the ref
	// advertisement, read by List, does.
	refs, err := r.ListContext(ctx, &gogit.ListOptions{Auth: s.remote.auth, CABundle: s.remote.caBundle})
	if err != nil {
		return fmt.Errorf("list remote references: %w", err)
	}
	err = r.FetchContext(ctx, &gogit.FetchOptions{
		RemoteName: remoteName,
		Auth:       s.remote.auth,
		CABundle:   s.remote.caBundle,
		Tags:       gogit.NoTags, // refSpecs fetch them all
		Prune:      true,
	})
	updated := !errors.Is(err, gogit.NoErrAlreadyUpToDate)
	if err != nil && updated {
		return fmt.Errorf("fetch objects: %w", err)
	}
	for _, ref := range refs {
		if ref.Name() == plumbing.HEAD && ref.Type() == plumbing.SymbolicReference {
			if err := s.repo.Storer.SetReference(ref); err != nil {
				return fmt.Errorf("set HEAD: %w", err)
			}
		}
	}
	head, err := s.repo.Head()
	if err != nil {
		return fmt.Errorf("read HEAD: %w", err)
	}
	level := slog.LevelDebug
	if updated {
		level = slog.LevelInfo
	}
	s.log.Log(ctx, level, "fetched repository", "head", head.Hash().String(), "updated", updated, "duration", time.Since(start))
	return nil
}
