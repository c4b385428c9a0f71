package git_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// deleted, as a file's content in testRepo.commit, removes the file.
const deleted = "\x00deleted"

// testRepo is a repository with a working tree in a temporary directory,
// built with go-git so that no user or system git configuration matters.
type testRepo struct {
	t    *testing.T
	dir  string
	repo *gogit.Repository
	wt   *gogit.Worktree
	when time.Time // the next commit's time
}

// newTestRepo creates an empty repository at dir whose default branch is
// branch.
func newTestRepo(t *testing.T, dir, branch string) *testRepo {
	t.Helper()
	repo, err := gogit.PlainInitWithOptions(dir, &gogit.PlainInitOptions{
		InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(branch)},
	})
	if err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	return &testRepo{t: t, dir: dir, repo: repo, wt: wt, when: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// write writes files (slash-separated path -> content) into the working
// tree, removing those whose content is deleted.
func (r *testRepo) write(files map[string]string) {
	r.t.Helper()
	for name, content := range files {
		p := filepath.Join(r.dir, filepath.FromSlash(name))
		if content == deleted {
			if err := os.Remove(p); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			r.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
}

// symlink creates the symbolic link name -> target in the working tree.
func (r *testRepo) symlink(name, target string) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		r.t.Fatal(err)
	}
}

// commit writes files and commits every change of the working tree.
func (r *testRepo) commit(msg string, files map[string]string) plumbing.Hash {
	r.t.Helper()
	r.write(files)
	if err := r.wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		r.t.Fatal(err)
	}
	h, err := r.wt.Commit(msg, &gogit.CommitOptions{All: true, AllowEmptyCommits: true, Author: r.signature()})
	if err != nil {
		r.t.Fatal(err)
	}
	return h
}

func (r *testRepo) signature() *object.Signature {
	r.when = r.when.Add(time.Minute)
	return &object.Signature{Name: "Test", Email: "test@example.com", When: r.when}
}

// tag creates a lightweight tag, or an annotated one if annotated is set.
func (r *testRepo) tag(name string, h plumbing.Hash, annotated bool) {
	r.t.Helper()
	var opts *gogit.CreateTagOptions
	if annotated {
		opts = &gogit.CreateTagOptions{Tagger: r.signature(), Message: "release " + name}
	}
	if _, err := r.repo.CreateTag(name, h, opts); err != nil {
		r.t.Fatal(err)
	}
}

// branch points the branch name at h, creating it if needed.
func (r *testRepo) branch(name string, h plumbing.Hash) {
	r.t.Helper()
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(plumbing.NewBranchReferenceName(name), h)); err != nil {
		r.t.Fatal(err)
	}
}

// deleteBranch removes the branch name.
func (r *testRepo) deleteBranch(name string) {
	r.t.Helper()
	if err := r.repo.Storer.RemoveReference(plumbing.NewBranchReferenceName(name)); err != nil {
		r.t.Fatal(err)
	}
}

// readAll returns every file of fsys, symbolic links followed, with its
// content.
func readAll(t *testing.T, fsys fs.FS) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		got[p] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
