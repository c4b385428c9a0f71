package git_test

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/reconciler-dev/reconciler/sources/git"
)

func ExampleOpen() {
	ctx := context.Background()
	// A monorepo that keeps its fleet under deploy/fleet.
	repo := exampleRepository(map[string]string{
		"README.md":                             "# platform\n",
		"deploy/fleet/instances/orders-db.yaml": "kind: Instance\n",
		"deploy/fleet/policies/ssl.rego":        "package main\n",
	})
	defer os.RemoveAll(repo)

	// Opening the subdirectory roots the snapshots there, as git -C would.
	src, err := git.Open(ctx, filepath.Join(repo, "deploy", "fleet"))
	if err != nil {
		log.Fatal(err)
	}
	snap, err := src.Snapshot(ctx, "main")
	if err != nil {
		log.Fatal(err)
	}
	err = fs.WalkDir(snap.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fmt.Println(p)
		}
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	// Output:
	// instances/orders-db.yaml
	// policies/ssl.rego
}

func ExampleClone() {
	ctx := context.Background()
	src, err := git.Clone(ctx, "git@git.example.com:platform/fleet.git",
		git.WithSubdir("fleet"),
		git.WithAuth(git.Auth{
			SSHKeyFile:     "/etc/reconciler/id_ed25519",
			KnownHostsFile: "/etc/reconciler/known_hosts",
		}))
	if err != nil {
		log.Fatal(err)
	}
	// Later, on a poll or a webhook: fetch, then see what the push changed.
	before, err := src.Snapshot(ctx, "")
	if err != nil {
		log.Fatal(err)
	}
	if err := src.Fetch(ctx); err != nil {
		log.Fatal(err)
	}
	changed, err := src.Changed(ctx, before.Revision, "HEAD")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(changed)
}

// exampleRepository commits files into a new repository on branch main
// and returns its directory.
func exampleRepository(files map[string]string) string {
	dir, err := os.MkdirTemp("", "fleet")
	if err != nil {
		log.Fatal(err)
	}
	repo, err := gogit.PlainInitWithOptions(dir, &gogit.PlainInitOptions{
		InitOptions: gogit.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		log.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		log.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if err := wt.AddWithOptions(&gogit.AddOptions{All: true}); err != nil {
		log.Fatal(err)
	}
	author := &object.Signature{Name: "Example", Email: "example@example.com", When: time.Unix(0, 0)}
	if _, err := wt.Commit("fleet", &gogit.CommitOptions{Author: author}); err != nil {
		log.Fatal(err)
	}
	return dir
}
