package dir_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/sources/dir"
)

// writeTree writes files (slash-separated path -> content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll returns every regular file of fsys with its content.
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

func TestSnapshotReadsWorkingTree(t *testing.T) {
	root := t.TempDir()
	files := map[string]string{
		"instances/orders-db.yaml": "kind: Instance\n",
		"policies/ssl.rego":        "package main\n",
	}
	writeTree(t, root, files)
	src, err := dir.New(root)
	if err != nil {
		t.Fatal(err)
	}

	for _, rev := range []string{"", dir.Revision} {
		snap, err := src.Snapshot(t.Context(), rev)
		if err != nil {
			t.Fatalf("Snapshot(%q): %v", rev, err)
		}
		if snap.Revision != dir.Revision {
			t.Errorf("Snapshot(%q).Revision = %q, want %q", rev, snap.Revision, dir.Revision)
		}
		if diff := cmp.Diff(files, readAll(t, snap.FS)); diff != "" {
			t.Errorf("Snapshot(%q) content (-want +got):\n%s", rev, diff)
		}
	}
}

func TestSnapshotIsLive(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{"instances/a.yaml": "v1"})
	src, err := dir.New(root)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, root, map[string]string{"instances/a.yaml": "v2"})
	got, err := fs.ReadFile(snap.FS, "instances/a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "v2" {
		t.Errorf("read after rewrite = %q, want %q", got, "v2")
	}
}

func TestSnapshotRejectsRevisions(t *testing.T) {
	src, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, rev := range []string{"HEAD", "main", "HEAD~1"} {
		_, err := src.Snapshot(t.Context(), rev)
		if !errors.Is(err, dir.ErrNoRevisions) {
			t.Errorf("Snapshot(%q) error = %v, want ErrNoRevisions", rev, err)
			continue
		}
		for _, want := range []string{rev, "git repository"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Snapshot(%q) error %q does not mention %q", rev, err, want)
			}
		}
	}
}

func TestSnapshotCanceled(t *testing.T) {
	src, err := dir.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := src.Snapshot(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Snapshot with canceled context: error = %v, want context.Canceled", err)
	}
}

func TestNewRejects(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		root string
		want string
	}{
		{"missing directory", filepath.Join(t.TempDir(), "missing"), "no such file"},
		{"regular file", file, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := dir.New(tt.root)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%q) error = %v, want one containing %q", tt.root, err, tt.want)
			}
		})
	}
}

func TestSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret": "host file"})
	root := t.TempDir()
	writeTree(t, root, map[string]string{"shared/base.yaml": "base"})
	links := map[string]string{
		"instances/inside.yaml":   "../shared/base.yaml",
		"instances/relative.yaml": "../../" + filepath.Base(outside) + "/secret",
		"instances/absolute.yaml": filepath.Join(outside, "secret"),
	}
	if err := os.MkdirAll(filepath.Join(root, "instances"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, filepath.FromSlash(name))); err != nil {
			t.Fatal(err)
		}
	}
	// The relative link must really reach the outside file, or the test
	// proves nothing.
	if b, err := os.ReadFile(filepath.Join(root, "instances", "relative.yaml")); err != nil || string(b) != "host file" {
		t.Fatalf("test setup: relative link does not reach the outside file: %q, %v", b, err)
	}

	src, err := dir.New(root)
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
		wantErr bool
	}{
		{"link inside the root is followed", "instances/inside.yaml", "base", false},
		{"relative link out of the root is refused", "instances/relative.yaml", "", true},
		{"absolute link out of the root is refused", "instances/absolute.yaml", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fs.ReadFile(snap.FS, tt.path)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ReadFile(%q) = %q, want an error", tt.path, got)
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
}

func TestFSConformance(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"instances/orders-db.yaml":     "kind: Instance\n",
		"instances/eu/billing-db.yaml": "kind: Instance\n",
		"policies/ssl.rego":            "package main\n",
	})
	src, err := dir.New(root)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := src.Snapshot(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(snap.FS, "instances/orders-db.yaml", "instances/eu/billing-db.yaml", "policies/ssl.rego"); err != nil {
		t.Fatal(err)
	}
}
