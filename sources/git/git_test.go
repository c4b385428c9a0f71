package git_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/reconciler-dev/reconciler/sources/git"
)

func TestSnapshotRevisions(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	c1 := r.commit("first", map[string]string{"instances/a.yaml": "a1"})
	c2 := r.commit("second", map[string]string{"instances/a.yaml": "a2", "instances/b.yaml": "b2"})
	c3 := r.commit("third", map[string]string{"instances/b.yaml": deleted, "policies/ssl.rego": "p3"})
	r.tag("v1", c1, false)
	r.tag("v2", c2, true)
	r.branch("release", c2)

	files := map[plumbing.Hash]map[string]string{
		c1: {"instances/a.yaml": "a1"},
		c2: {"instances/a.yaml": "a2", "instances/b.yaml": "b2"},
		c3: {"instances/a.yaml": "a2", "policies/ssl.rego": "p3"},
	}
	src, err := git.Open(t.Context(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		rev  string
		want plumbing.Hash
	}{
		{"empty revision is HEAD", "", c3},
		{"HEAD", "HEAD", c3},
		{"default branch", "main", c3},
		{"other branch", "release", c2},
		{"full branch reference", "refs/heads/release", c2},
		{"lightweight tag", "v1", c1},
		{"annotated tag is peeled to its commit", "v2", c2},
		{"full tag reference", "refs/tags/v2", c2},
		{"parent by tilde", "HEAD~1", c2},
		{"grandparent by tilde", "HEAD~2", c1},
		{"parent by caret", "main^", c2},
		{"ancestry from a tag", "v2~1", c1},
		{"full hash", c1.String(), c1},
		{"abbreviated hash", c1.String()[:7], c1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := src.Snapshot(t.Context(), tt.rev)
			if err != nil {
				t.Fatal(err)
			}
			if snap.Revision != tt.want.String() {
				t.Errorf("Revision = %s, want %s", snap.Revision, tt.want)
			}
			if diff := cmp.Diff(files[tt.want], readAll(t, snap.FS)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSnapshotUnknownRevision(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	r.commit("first", map[string]string{"instances/a.yaml": "a"})
	src, err := git.Open(t.Context(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range []string{"no-such-branch", "HEAD~5", "0123abcd", "refs/heads/nope"} {
		_, err := src.Snapshot(t.Context(), rev)
		if !errors.Is(err, git.ErrUnknownRevision) {
			t.Errorf("Snapshot(%q) error = %v, want ErrUnknownRevision", rev, err)
			continue
		}
		t.Logf("error: %v", err)
		for _, want := range []string{`"` + rev + `"`, "git fetch"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Snapshot(%q) error %q does not mention %s", rev, err, want)
			}
		}
	}
}

func TestSnapshotOfEmptyRepository(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	src, err := git.Open(t.Context(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Snapshot(t.Context(), ""); !errors.Is(err, git.ErrUnknownRevision) {
		t.Errorf("Snapshot of a repository without commits: error = %v, want ErrUnknownRevision", err)
	}
}

func TestOpenSubdirectory(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	r.commit("fleet", map[string]string{
		"README.md":                             "top",
		"examples/fleet/instances/orders.yaml":  "orders",
		"examples/fleet/policies/ssl.rego":      "ssl",
		"examples/other/instances/ignored.yaml": "other",
	})
	fleet := map[string]string{"instances/orders.yaml": "orders", "policies/ssl.rego": "ssl"}

	tests := []struct {
		name string
		path string
		opts []git.Option
		want map[string]string
	}{
		{"repository root", r.dir, nil, map[string]string{
			"README.md":                             "top",
			"examples/fleet/instances/orders.yaml":  "orders",
			"examples/fleet/policies/ssl.rego":      "ssl",
			"examples/other/instances/ignored.yaml": "other",
		}},
		{"subdirectory path", filepath.Join(r.dir, "examples", "fleet"), nil, fleet},
		{"subdirectory option", r.dir, []git.Option{git.WithSubdir("examples/fleet")}, fleet},
		{"path and option joined", filepath.Join(r.dir, "examples"), []git.Option{git.WithSubdir("fleet")}, fleet},
		{"unclean option", r.dir, []git.Option{git.WithSubdir("./examples//fleet/")}, fleet},
		{"deeper subdirectory", filepath.Join(r.dir, "examples", "fleet", "instances"), nil, map[string]string{"orders.yaml": "orders"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := git.Open(t.Context(), tt.path, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			snap, err := src.Snapshot(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, readAll(t, snap.FS)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSnapshotBeforeTheFleetExistedIsEmpty(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	r.commit("docs", map[string]string{"README.md": "top"})
	r.commit("fleet", map[string]string{"fleet/instances/a.yaml": "a"})
	src, err := git.Open(t.Context(), filepath.Join(r.dir, "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "HEAD~1")
	if err != nil {
		t.Fatalf("Snapshot before the fleet existed: %v; want an empty fleet", err)
	}
	if got := readAll(t, snap.FS); len(got) != 0 {
		t.Errorf("Snapshot before the fleet existed holds %v; want nothing", got)
	}
	if _, err := fs.Stat(snap.FS, "instances"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(instances) = %v, want fs.ErrNotExist", err)
	}
	if err := fstest.TestFS(snap.FS); err != nil {
		t.Error(err)
	}
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	r.commit("first", map[string]string{"instances/a.yaml": "a"})
	tests := []struct {
		name string
		path string
		opts []git.Option
		want string
	}{
		{"missing path", filepath.Join(r.dir, "missing"), nil, "no such file"},
		{"file, not directory", filepath.Join(r.dir, "instances", "a.yaml"), nil, "not a directory"},
		{"not in a repository", t.TempDir(), nil, "repository does not exist"},
		{"subdirectory leaving the repository", r.dir, []git.Option{git.WithSubdir("../elsewhere")}, "not a relative path inside the repository"},
		{"absolute subdirectory", r.dir, []git.Option{git.WithSubdir("/etc")}, "not a relative path inside the repository"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := git.Open(t.Context(), tt.path, tt.opts...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestChanged(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	c0 := r.commit("docs only", map[string]string{"docs/README.md": "d0"})
	c1 := r.commit("fleet", map[string]string{
		"fleet/instances/a.yaml":  "a1",
		"fleet/instances/b.yaml":  "b1",
		"fleet/policies/old.rego": "p1",
	})
	c2 := r.commit("add", map[string]string{"fleet/instances/eu/c.yaml": "c2"})
	c3 := r.commit("modify", map[string]string{"fleet/instances/a.yaml": "a3"})
	c4 := r.commit("delete", map[string]string{"fleet/instances/b.yaml": deleted})
	c5 := r.commit("rename", map[string]string{"fleet/policies/old.rego": deleted, "fleet/policies/ssl.rego": "p1"})
	c6 := r.commit("outside", map[string]string{"docs/README.md": "d6", "fleet-other/x.yaml": "x"})
	r.tag("v1", c1, true)

	src, err := git.Open(t.Context(), filepath.Join(r.dir, "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		from, to string
		want     []string
	}{
		{"added file", c1.String(), c2.String(), []string{"instances/eu/c.yaml"}},
		{"modified file", c2.String(), c3.String(), []string{"instances/a.yaml"}},
		{"deleted file", c3.String(), c4.String(), []string{"instances/b.yaml"}},
		{"rename lists both names", c4.String(), c5.String(), []string{"policies/old.rego", "policies/ssl.rego"}},
		{"changes outside the fleet are excluded", c5.String(), c6.String(), nil},
		{"same revision", "HEAD", c6.String(), nil},
		{"several commits, sorted", "v1", "HEAD", []string{
			"instances/a.yaml", "instances/b.yaml", "instances/eu/c.yaml", "policies/old.rego", "policies/ssl.rego",
		}},
		{"backwards", "HEAD", "v1", []string{
			"instances/a.yaml", "instances/b.yaml", "instances/eu/c.yaml", "policies/old.rego", "policies/ssl.rego",
		}},
		{"fleet created", c0.String(), c1.String(), []string{"instances/a.yaml", "instances/b.yaml", "policies/old.rego"}},
		{"ancestry revisions", "HEAD~4", "HEAD~3", []string{"instances/a.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := src.Changed(t.Context(), tt.from, tt.to)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Changed(%s, %s) (-want +got):\n%s", tt.from, tt.to, diff)
			}
		})
	}

	if _, err := src.Changed(t.Context(), "v1", "no-such-tag"); !errors.Is(err, git.ErrUnknownRevision) {
		t.Errorf("Changed to an unknown revision: error = %v, want ErrUnknownRevision", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := src.Changed(ctx, "v1", "HEAD"); !errors.Is(err, context.Canceled) {
		t.Errorf("Changed with a canceled context: error = %v, want context.Canceled", err)
	}
}

func TestFSConformance(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	r.write(map[string]string{"fleet/scripts/check.sh": "#!/bin/sh\n"})
	r.symlink("fleet/instances/linked.yaml", "../shared/base.yaml")
	r.symlink("fleet/shared-dir", "shared")
	r.commit("fleet", map[string]string{
		"README.md":                       "outside the fleet",
		"fleet/instances/orders.yaml":     "orders",
		"fleet/instances/eu/billing.yaml": "billing",
		// git orders "a-b" before the directory "a"; fs.ReadDir must not.
		"fleet/policies/a/deny.rego": "deny",
		"fleet/policies/a-b.rego":    "ab",
		"fleet/shared/base.yaml":     "base",
	})
	if err := os.Chmod(filepath.Join(r.dir, "fleet/scripts/check.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	r.commit("executable", nil)

	src, err := git.Open(t.Context(), filepath.Join(r.dir, "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	err = fstest.TestFS(snap.FS,
		"instances/orders.yaml", "instances/eu/billing.yaml", "instances/linked.yaml",
		"policies/a/deny.rego", "policies/a-b.rego", "shared/base.yaml", "scripts/check.sh",
		"shared-dir") // fstest lists a symbolic link but does not walk through it
	if err != nil {
		t.Fatal(err)
	}

	entries, err := fs.ReadDir(snap.FS, "policies")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"a", "a-b.rego"}, names); diff != "" {
		t.Errorf("ReadDir order (-want +got):\n%s", diff)
	}

	modes := map[string]fs.FileMode{
		"instances/orders.yaml": 0o644,
		"scripts/check.sh":      0o755,
		"instances":             fs.ModeDir | 0o755,
		".":                     fs.ModeDir | 0o755,
	}
	for name, want := range modes {
		info, err := fs.Stat(snap.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("Stat(%q).Mode() = %v, want %v", name, info.Mode(), want)
		}
	}
}

func TestFSSymlinks(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	r.symlink("fleet/instances/inside.yaml", "../shared/base.yaml")
	r.symlink("fleet/instances/via-dir.yaml", "../shared-link/base.yaml")
	r.symlink("fleet/shared-link", "shared")
	r.symlink("fleet/instances/to-repo-top.yaml", "../../README.md")
	r.symlink("fleet/instances/absolute.yaml", "/etc/passwd")
	r.symlink("fleet/loop-a", "loop-b")
	r.symlink("fleet/loop-b", "loop-a")
	r.symlink("fleet/dangling.yaml", "missing.yaml")
	r.commit("links", map[string]string{"README.md": "top", "fleet/shared/base.yaml": "base"})

	src, err := git.Open(t.Context(), filepath.Join(r.dir, "fleet"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		path    string
		want    string
		wantErr string
	}{
		{"link inside the snapshot is followed", "instances/inside.yaml", "base", ""},
		{"link through a linked directory", "instances/via-dir.yaml", "base", ""},
		{"directory link in a path", "shared-link/base.yaml", "base", ""},
		{"link above the fleet root is refused", "instances/to-repo-top.yaml", "", "leads out of the snapshot"},
		{"absolute link is refused", "instances/absolute.yaml", "", "leads out of the snapshot"},
		{"link loop", "loop-a", "", "too many levels of symbolic links"},
		{"dangling link", "dangling.yaml", "", "file does not exist"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fs.ReadFile(snap.FS, tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadFile(%q) = %q, %v; want error containing %q", tt.path, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("ReadFile(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}

	target, err := fs.ReadLink(snap.FS, "instances/to-repo-top.yaml")
	if err != nil || target != "../../README.md" {
		t.Errorf("ReadLink = %q, %v; want the link's own target", target, err)
	}
	info, err := fs.Lstat(snap.FS, "instances/inside.yaml")
	if err != nil || info.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat = %v, %v; want a symbolic link", info, err)
	}
	info, err = fs.Stat(snap.FS, "instances/inside.yaml")
	if err != nil || info.Name() != "inside.yaml" || !info.Mode().IsRegular() || info.Size() != int64(len("base")) {
		t.Errorf("Stat = %+v, %v; want the target's regular file under the link's name", info, err)
	}
}

func TestFSRejectsInvalidPaths(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	r.commit("first", map[string]string{"instances/a.yaml": "a"})
	src, err := git.Open(t.Context(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"/instances/a.yaml", "../a.yaml", "instances/../instances/a.yaml", "instances/", ""} {
		if _, err := snap.FS.Open(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q) error = %v, want fs.ErrInvalid", name, err)
		}
	}
	for _, name := range []string{"missing.yaml", "instances/a.yaml/below"} {
		if _, err := snap.FS.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) error = %v, want fs.ErrNotExist", name, err)
		}
	}
	if _, err := fs.ReadFile(snap.FS, "instances"); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("ReadFile of a directory: error = %v, want one saying it is a directory", err)
	}
}

// TestConcurrentReaders reads snapshots from many goroutines while others
// take snapshots and list changes from the same Source. Run with -race:
// go-git's storage is not safe for concurrent use on its own.
func TestConcurrentReaders(t *testing.T) {
	t.Parallel()
	r := newTestRepo(t, t.TempDir(), "main")
	want := map[string]string{}
	for i := range 3 {
		files := map[string]string{}
		for j := range 20 {
			name := "instances/" + string(rune('a'+i)) + "/" + string(rune('a'+j)) + ".yaml"
			files[name] = strings.Repeat(name, 50)
			want[name] = files[name]
		}
		r.commit("batch", files)
	}
	src, err := git.Open(t.Context(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if diff := cmp.Diff(want, readAll(t, snap.FS)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
		})
		wg.Go(func() {
			s, err := src.Snapshot(t.Context(), "HEAD~1")
			if err != nil {
				t.Error(err)
				return
			}
			readAll(t, s.FS)
		})
		wg.Go(func() {
			if _, err := src.Changed(t.Context(), "HEAD~2", "HEAD"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestOpenSeesLaterCommits checks that a long-lived Source from Open sees
// commits made after it was opened, also once the user's git has packed
// them away.
func TestOpenSeesLaterCommits(t *testing.T) {
	t.Parallel()
	gitPath := gitBinary(t)
	r := newTestRepo(t, t.TempDir(), "main")
	run := func(args ...string) string {
		cmd := exec.Command(gitPath, append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.com"}, args...)...)
		cmd.Dir, cmd.Env = r.dir, gitEnv(t)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	r.commit("first", map[string]string{"instances/a.yaml": "a1"})
	run("gc", "--quiet", "--prune=now")
	src, err := git.Open(t.Context(), r.dir)
	if err != nil {
		t.Fatal(err)
	}
	// Reading from the pack makes go-git load its list of packs.
	if snap, err := src.Snapshot(t.Context(), ""); err != nil {
		t.Fatal(err)
	} else {
		readAll(t, snap.FS)
	}

	// The user commits and packs with their git: the pack go-git knows is
	// replaced by one it does not.
	r.write(map[string]string{"instances/a.yaml": "a2"})
	run("commit", "--quiet", "-a", "-m", "second")
	run("gc", "--quiet", "--prune=now")
	second := run("rev-parse", "HEAD")

	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if snap.Revision != second {
		t.Errorf("Revision = %s, want %s", snap.Revision, second)
	}
	if diff := cmp.Diff(map[string]string{"instances/a.yaml": "a2"}, readAll(t, snap.FS)); diff != "" {
		t.Errorf("content (-want +got):\n%s", diff)
	}
}
