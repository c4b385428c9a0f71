package git_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/sources/git"
)

var author = object.Signature{Name: "Dana Ops", Email: "dana@example.com", When: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}

const (
	ordersBefore = "metadata: {name: orders-db}\nspec:\n  ssl: disabled\n"
	ordersAfter  = "metadata: {name: orders-db}\nspec:\n  ssl: enabled\n"
)

// newFleetRepo makes a repository on branch main whose fleet is in the
// subdirectory fleet, and returns it with the fleet's directory.
func newFleetRepo(t *testing.T) (*testRepo, string) {
	t.Helper()
	r := newTestRepo(t, t.TempDir(), "main")
	r.commit("fleet", map[string]string{
		"README.md":                     "platform\n",
		"fleet/instances/orders.yaml":   ordersBefore,
		"fleet/instances/payments.yaml": "payments\n",
	})
	return r, filepath.Join(r.dir, "fleet")
}

// gitStatus is git status --porcelain of the real git, which reads the
// index go-git wrote.
func gitStatus(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(gitBinary(t), "-C", dir, "status", "--porcelain")
	cmd.Env = gitEnv(t)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git status: %v\n%s", err, out)
	}
	return string(out)
}

func TestCommitFile(t *testing.T) {
	r, fleet := newFleetRepo(t)
	base, err := r.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	// Work in progress elsewhere, staged and not, stays out of the commit.
	r.write(map[string]string{"README.md": "platform, edited\n", "fleet/instances/new.yaml": "staged\n"})
	if _, err := r.wt.Add("fleet/instances/new.yaml"); err != nil {
		t.Fatal(err)
	}

	hash, err := git.CommitFile(t.Context(), fleet, "ssl-enable-orders-db", "instances/orders.yaml", []byte(ordersAfter), "ssl: enable on orders-db", author)
	if err != nil {
		t.Fatal(err)
	}

	head, err := r.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	if head.Name() != "refs/heads/ssl-enable-orders-db" || head.Hash().String() != hash {
		t.Errorf("HEAD is %s at %s, want the new branch at %s", head.Name(), head.Hash(), hash)
	}
	if main, _ := r.repo.Reference("refs/heads/main", false); main.Hash() != base.Hash() {
		t.Errorf("main moved to %s", main.Hash())
	}
	commit, err := r.repo.CommitObject(head.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if commit.Message != "ssl: enable on orders-db\n" || commit.Author.Email != author.Email || commit.Committer.Name != author.Name {
		t.Errorf("commit message %q, author %v, committer %v", commit.Message, commit.Author, commit.Committer)
	}
	if len(commit.ParentHashes) != 1 || commit.ParentHashes[0] != base.Hash() {
		t.Errorf("parents %v, want %s", commit.ParentHashes, base.Hash())
	}
	parent, _ := commit.Parent(0)
	patch, err := parent.Patch(commit)
	if err != nil {
		t.Fatal(err)
	}
	var changed []string
	for _, fp := range patch.FilePatches() {
		from, to := fp.Files()
		if from == nil || to == nil || from.Path() != to.Path() {
			t.Fatalf("the commit adds, deletes or renames a file: %v %v", from, to)
		}
		changed = append(changed, to.Path())
	}
	if diff := cmp.Diff([]string{"fleet/instances/orders.yaml"}, changed); diff != "" {
		t.Errorf("files in the commit (-want +got):\n%s", diff)
	}
	if got, _ := os.ReadFile(filepath.Join(fleet, "instances", "orders.yaml")); string(got) != ordersAfter {
		t.Errorf("file on disk = %q", got)
	}
	// The real git agrees: orders.yaml is committed, the rest as it was.
	want := " M README.md\nA  fleet/instances/new.yaml\n"
	if diff := cmp.Diff(want, gitStatus(t, r.dir)); diff != "" {
		t.Errorf("git status (-want +got):\n%s", diff)
	}
	if branch, err := git.HeadBranch(fleet); err != nil || branch != "ssl-enable-orders-db" {
		t.Errorf("HeadBranch = %q, %v", branch, err)
	}
}

func TestCommitFileRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, r *testRepo)
		branch  string
		path    string
		wantIs  error
		wantErr string
	}{
		{
			name:    "the branch exists",
			prepare: func(t *testing.T, r *testRepo) { r.branch("ssl-enable-orders-db", r.head(t)) },
			wantIs:  git.ErrBranchExists,
			wantErr: "choose another name, or delete it with git branch -D ssl-enable-orders-db",
		},
		{
			name: "the file has changes in the working tree",
			prepare: func(t *testing.T, r *testRepo) {
				r.write(map[string]string{"fleet/instances/orders.yaml": ordersBefore + "# mine\n"})
			},
			wantIs:  git.ErrUncommittedChanges,
			wantErr: "commit instances/orders.yaml: uncommitted changes in the working tree: commit or stash them (git stash), then run again",
		},
		{
			name: "the file has staged changes",
			prepare: func(t *testing.T, r *testRepo) {
				r.write(map[string]string{"fleet/instances/orders.yaml": ordersBefore + "# mine\n"})
				if _, err := r.wt.Add("fleet/instances/orders.yaml"); err != nil {
					t.Fatal(err)
				}
				r.write(map[string]string{"fleet/instances/orders.yaml": ordersBefore})
			},
			wantIs:  git.ErrUncommittedChanges,
			wantErr: "uncommitted changes in the index: commit them, or unstage them with git restore --staged fleet/instances/orders.yaml",
		},
		{
			name:    "the file is not committed",
			prepare: func(t *testing.T, r *testRepo) { r.write(map[string]string{"fleet/instances/new.yaml": "x\n"}) },
			path:    "instances/new.yaml",
			wantIs:  git.ErrUncommittedChanges,
			wantErr: "commit instances/new.yaml: uncommitted changes: the file is not in HEAD",
		},
		{
			name:    "an invalid branch name",
			branch:  "ssl enable..",
			wantErr: `"ssl enable.." is not a valid branch name`,
		},
		{
			name:    "a path out of the repository",
			path:    "../../etc/passwd",
			wantErr: "not a file path inside the repository",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, fleet := newFleetRepo(t)
			if tt.prepare != nil {
				tt.prepare(t, r)
			}
			before, _ := r.repo.Head()
			branch, path := tt.branch, tt.path
			if branch == "" {
				branch = "ssl-enable-orders-db"
			}
			if path == "" {
				path = "instances/orders.yaml"
			}
			onDisk, _ := os.ReadFile(filepath.Join(fleet, filepath.FromSlash(path)))
			_, err := git.CommitFile(t.Context(), fleet, branch, path, []byte(ordersAfter), "ssl: enable on orders-db", author)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tt.wantIs)
			}
			if after, _ := r.repo.Head(); after.Name() != before.Name() || after.Hash() != before.Hash() {
				t.Errorf("HEAD moved from %v to %v", before, after)
			}
			if got, _ := os.ReadFile(filepath.Join(fleet, filepath.FromSlash(path))); string(got) != string(onDisk) {
				t.Errorf("the file was changed to %q", got)
			}
		})
	}
}

// head returns the hash HEAD points at.
func (r *testRepo) head(t *testing.T) plumbing.Hash {
	t.Helper()
	h, err := r.repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	return h.Hash()
}

// newBareRemote creates an empty bare repository at dir that accepts
// pushes over HTTP too.
func newBareRemote(t *testing.T, dir string) *gogit.Repository {
	t.Helper()
	bare, err := gogit.PlainInit(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := bare.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Raw.Section("http").SetOption("receivepack", "true")
	if err := bare.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return bare
}

// addRemote names url the remote origin of r.
func (r *testRepo) addRemote(url string) {
	r.t.Helper()
	if _, err := r.repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
		r.t.Fatal(err)
	}
}

func checkPushed(t *testing.T, bare *gogit.Repository, r *testRepo, branch, hash string) {
	t.Helper()
	ref, err := bare.Reference(plumbing.NewBranchReferenceName(branch), false)
	if err != nil {
		t.Fatalf("the remote has no branch %s: %v", branch, err)
	}
	if ref.Hash().String() != hash {
		t.Errorf("the remote's %s is at %s, want %s", branch, ref.Hash(), hash)
	}
	cfg, err := r.repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Branches[branch]; b == nil || b.Remote != "origin" || b.Merge != plumbing.NewBranchReferenceName(branch) {
		t.Errorf("upstream of %s = %+v, want origin's %s", branch, b, branch)
	}
}

func TestPushHTTP(t *testing.T) {
	root := t.TempDir()
	bare := newBareRemote(t, filepath.Join(root, "fleet.git"))
	srv := httpGitServer(t, root, "fleet-writer", canary)
	r, fleet := newFleetRepo(t)
	r.addRemote(srv.URL + "/fleet.git")
	hash, err := git.CommitFile(t.Context(), fleet, "ssl-enable-orders-db", "instances/orders.yaml", []byte(ordersAfter), "ssl: enable on orders-db", author)
	if err != nil {
		t.Fatal(err)
	}

	err = git.Push(t.Context(), fleet, "origin", "ssl-enable-orders-db", git.WithAuth(git.Auth{Username: "fleet-writer", Password: canary + "-wrong"}))
	if err == nil || !strings.Contains(err.Error(), "authentication required") || strings.Contains(err.Error(), canary) {
		t.Fatalf("push with a wrong password: error = %v, want an authentication error without the password", err)
	}
	if err := git.Push(t.Context(), fleet, "origin", "ssl-enable-orders-db", git.WithAuth(git.Auth{Username: "fleet-writer", Password: canary})); err != nil {
		t.Fatal(err)
	}
	checkPushed(t, bare, r, "ssl-enable-orders-db", hash)
	// Pushing again is not an error.
	if err := git.Push(t.Context(), fleet, "origin", "ssl-enable-orders-db", git.WithAuth(git.Auth{Username: "fleet-writer", Password: canary})); err != nil {
		t.Errorf("second push: %v", err)
	}
}

func TestPushFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fleet.git")
	bare := newBareRemote(t, dir)
	r, fleet := newFleetRepo(t)
	r.addRemote("file://" + filepath.ToSlash(dir))
	hash, err := git.CommitFile(t.Context(), fleet, "ssl-enable-orders-db", "instances/orders.yaml", []byte(ordersAfter), "ssl: enable on orders-db", author)
	if err != nil {
		t.Fatal(err)
	}
	if err := git.Push(t.Context(), fleet, "origin", "ssl-enable-orders-db"); err != nil {
		t.Fatal(err)
	}
	checkPushed(t, bare, r, "ssl-enable-orders-db", hash)

	err = git.Push(t.Context(), fleet, "upstream", "ssl-enable-orders-db")
	if err == nil || !strings.Contains(err.Error(), `no remote "upstream"`) {
		t.Errorf("push to a missing remote: error = %v", err)
	}
	err = git.Push(t.Context(), fleet, "origin", "ssl-enable-orders-db", git.WithAuth(git.Auth{Token: canary}))
	if err == nil || !strings.Contains(err.Error(), "credentials given for a file URL") || strings.Contains(err.Error(), canary) {
		t.Errorf("push with a token to a file URL: error = %v, want credentials refused without the token", err)
	}
}

func TestAuthor(t *testing.T) {
	r, fleet := newFleetRepo(t)
	cfg, err := r.repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.User.Name, cfg.User.Email = "Repo User", "repo@example.com"
	if err := r.repo.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	sig, err := git.Author(fleet)
	if err != nil || sig.Name != "Repo User" || sig.Email != "repo@example.com" {
		t.Errorf("Author = %v, %v; want the repository's user", sig, err)
	}
	t.Setenv("GIT_AUTHOR_NAME", "Env Author")
	t.Setenv("GIT_AUTHOR_EMAIL", "env@example.com")
	if sig, err := git.Author(fleet); err != nil || sig.Name != "Env Author" || sig.Email != "env@example.com" {
		t.Errorf("Author = %v, %v; want the environment's", sig, err)
	}
}
