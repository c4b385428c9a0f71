package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/google/go-cmp/cmp"
)

// sslRepo is mergeRequest's repository with a commit author configured,
// and the hash of its one commit.
func sslRepo(t *testing.T) (string, *gogit.Repository, plumbing.Hash) {
	t.Helper()
	dir := mergeRequest(t)
	repo, err := gogit.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := repo.Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg.User.Name, cfg.User.Email = "Dana Ops", "dana@example.com"
	if err := repo.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	return dir, repo, head.Hash()
}

// headOf returns the branch HEAD names and the commit it is at.
func headOf(t *testing.T, repo *gogit.Repository) (plumbing.ReferenceName, plumbing.Hash) {
	t.Helper()
	head, err := repo.Head()
	if err != nil {
		t.Fatal(err)
	}
	return head.Name(), head.Hash()
}

var commitLine = regexp.MustCompile(`Committed [0-9a-f]{12} `)

func TestSSLEnable(t *testing.T) {
	dir, repo, base := sslRepo(t)
	code, out, errOut := reconcile(t, "ssl", "enable", "payments-db-staging", "--repo", dir)
	if code != 0 {
		t.Fatalf("exit status %d, want 0; stderr: %s", code, errOut)
	}
	golden(t, "ssl-enable.text", commitLine.ReplaceAllString(strings.ReplaceAll(out, dir, "FLEET"), "Committed HASH "))

	branch, hash := headOf(t, repo)
	if branch != "refs/heads/ssl-enable-payments-db-staging" {
		t.Errorf("HEAD is %s, want the new branch", branch)
	}
	commit, err := repo.CommitObject(hash)
	if err != nil {
		t.Fatal(err)
	}
	if commit.Message != "ssl: enable on payments-db-staging\n" || commit.Author.Email != "dana@example.com" {
		t.Errorf("commit message %q by %s", commit.Message, commit.Author.Email)
	}
	parent, err := commit.Parent(0)
	if err != nil || parent.Hash != base {
		t.Fatalf("parent %v, %v; want %s", parent, err, base)
	}
	patch, err := parent.Patch(commit)
	if err != nil {
		t.Fatal(err)
	}
	var stats []string
	for _, s := range patch.Stats() {
		stats = append(stats, s.String())
	}
	if diff := cmp.Diff([]string{" instances/staging/databases.yaml | 2 +-\n"}, stats); diff != "" {
		t.Errorf("the commit changes more than one line (-want +got):\n%s", diff)
	}
	if !strings.Contains(patch.String(), "-  ssl: disabled\n+  ssl: enabled\n") {
		t.Errorf("patch:\n%s", patch)
	}

	// The merge request's plan: that one instance's spec.ssl.
	code, out, errOut = reconcile(t, "diff", dir, "--base", base.String(), "-o", "json")
	if code != 2 {
		t.Fatalf("diff exit status %d, want 2 (changes); stderr: %s", code, errOut)
	}
	var plan struct {
		Instances []struct {
			Name, Change string
			Fields       []struct {
				Path     string
				From, To any
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &plan); err != nil {
		t.Fatal(err)
	}
	for _, in := range plan.Instances {
		switch {
		case in.Name == "payments-db-staging":
			if in.Change != "update" || len(in.Fields) != 1 || in.Fields[0].Path != "spec.ssl" || in.Fields[0].From != "disabled" || in.Fields[0].To != "enabled" {
				t.Errorf("payments-db-staging: change %s, fields %+v; want an update of spec.ssl from disabled to enabled", in.Change, in.Fields)
			}
		case in.Change != "none":
			t.Errorf("%s: change %s, want none", in.Name, in.Change)
		}
	}
}

func TestSSLDisable(t *testing.T) {
	dir, repo, _ := sslRepo(t)
	code, out, errOut := reconcile(t, "ssl", "disable", "orders-db-staging", "--repo", dir, "-m", "ssl: off for the load test")
	if code != 0 {
		t.Fatalf("exit status %d, want 0; stderr: %s", code, errOut)
	}
	for _, want := range []string{
		"instances/staging/databases.yaml:11\n-   ssl: enabled\n+   ssl: disabled\n",
		"on the new branch ssl-disable-orders-db-staging, now checked out:\n  ssl: off for the load test\n",
		"git push -u origin ssl-disable-orders-db-staging",
		"open a merge request from ssl-disable-orders-db-staging into master",
		"reconciler diff " + dir + " --base master",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	branch, hash := headOf(t, repo)
	commit, err := repo.CommitObject(hash)
	if err != nil {
		t.Fatal(err)
	}
	if branch != "refs/heads/ssl-disable-orders-db-staging" || commit.Message != "ssl: off for the load test\n" {
		t.Errorf("HEAD %s, message %q", branch, commit.Message)
	}
}

func TestSSLRefuses(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(t *testing.T, dir string)
		args     []string
		wantCode int
		wantOut  string // in stdout
		wantErr  string // in stderr
	}{
		{
			name:     "an unknown name, with the close ones",
			args:     []string{"ssl", "enable", "payments-db-stagin"},
			wantCode: 1,
			wantErr:  `reconciler: no instance named "payments-db-stagin" in the fleet; did you mean "payments-db-staging"?` + "\n",
		},
		{
			name:     "an instance already enabled is a note, not a commit",
			args:     []string{"ssl", "enable", "ledger-db"},
			wantCode: 0,
			wantOut:  "ledger-db already has spec.ssl: enabled in instances/production/ledger.yaml: nothing to commit.\n",
		},
		{
			name: "a file with uncommitted changes",
			edit: func(t *testing.T, dir string) {
				edit(t, filepath.Join(dir, "instances/staging/databases.yaml"), "# Staging mirrors", "# Staging (edited) mirrors")
			},
			args:     []string{"ssl", "enable", "payments-db-staging"},
			wantCode: 1,
			wantErr:  "reconciler: commit instances/staging/databases.yaml: uncommitted changes in the working tree: commit or stash them (git stash), then run again\n",
		},
		{
			name: "an instance in a broken file",
			edit: func(t *testing.T, dir string) {
				edit(t, filepath.Join(dir, "instances/staging/databases.yaml"), "ssl: enabled", "ssl: yes")
			},
			args:     []string{"ssl", "enable", "payments-db-staging"},
			wantCode: 1,
			wantErr:  "instances/staging/databases.yaml could not be read, so the instances there are unknown: fix the errors first",
		},
		{
			name:     "the branch exists",
			args:     []string{"ssl", "enable", "payments-db-staging", "--branch", "master"},
			wantCode: 1,
			wantErr:  "branch master: branch already exists: choose another name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, repo, base := sslRepo(t)
			if tt.edit != nil {
				tt.edit(t, dir)
			}
			before, _ := os.ReadFile(filepath.Join(dir, "instances/staging/databases.yaml"))
			code, out, errOut := reconcile(t, append(tt.args, "--repo", dir)...)
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stdout %q, want %q in it\nstderr %q, want %q in it", out, tt.wantOut, errOut, tt.wantErr)
			}
			if branch, hash := headOf(t, repo); branch != "refs/heads/master" || hash != base {
				t.Errorf("HEAD moved to %s at %s", branch, hash)
			}
			if after, _ := os.ReadFile(filepath.Join(dir, "instances/staging/databases.yaml")); string(after) != string(before) {
				t.Errorf("the instance file was changed")
			}
		})
	}
}

func TestSSLPush(t *testing.T) {
	dir, repo, _ := sslRepo(t)
	remoteDir := filepath.Join(t.TempDir(), "fleet.git")
	remote, err := gogit.PlainInit(remoteDir, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "upstream", URLs: []string{remoteDir}}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := reconcile(t, "ssl", "enable", "ledger-db-staging", "--repo", dir, "--push", "--remote", "upstream", "--branch", "chg-1234")
	if code != 0 {
		t.Fatalf("exit status %d, want 0; stderr: %s", code, errOut)
	}
	if !strings.Contains(out, "Pushed chg-1234 to upstream.\n") || strings.Contains(out, "git push") {
		t.Errorf("output does not say it pushed:\n%s", out)
	}
	_, hash := headOf(t, repo)
	ref, err := remote.Reference("refs/heads/chg-1234", false)
	if err != nil || ref.Hash() != hash {
		t.Errorf("the remote's chg-1234 is %v (%v), want %s", ref, err, hash)
	}
}
