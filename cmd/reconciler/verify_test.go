package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconciler-dev/reconciler/sources/signature/signaturetest"
)

// TestVerifiedCommitsAndRewrites runs the daemon on a git fleet with
// strict commit verification: an unsigned commit is refused, reported and
// never applied, also once a signed one follows it; a force-push is
// refused until an admin accepts it; and diff checks the same.
func TestVerifiedCommitsAndRewrites(t *testing.T) {
	signaturetest.NeedTools(t, "git", "ssh-keygen")
	repo := signaturetest.NewRepo(t)
	key := signaturetest.NewSSHKey(t, "platform")
	alice := signaturetest.Identity{Name: "Alice", Email: "alice@example.com", Key: key}
	mallory := signaturetest.Identity{Name: "Mallory", Email: "mallory@example.com"}
	signers := filepath.Join(t.TempDir(), "allowed_signers")
	os.WriteFile(signers, []byte(key.AllowedSigner("alice@example.com", `namespaces="git"`)+"\n"), 0o644)
	commit := func(who signaturetest.Identity, ssl, msg string) string {
		os.MkdirAll(filepath.Join(repo.Dir, "instances"), 0o755)
		os.WriteFile(filepath.Join(repo.Dir, "instances", "search.yaml"), []byte(strings.Replace(runSearchInstance, "ssl: enabled", "ssl: "+ssl, 1)), 0o644)
		repo.Git("add", "instances")
		return repo.Commit(who, msg)
	}
	c1 := commit(alice, "disabled", "the fleet")

	d := startDaemonOn(t, `source:
  git:
    url: `+repo.Dir+`
    branch: main
    pollInterval: 1s
    cacheDir: cache
    verify: {mode: strict, allowedSignersFile: `+signers+`}
`, func(string) {})
	source := func() (applied, refused, reason string) {
		_, body := d.get(t, "/v1/source", d.viewer)
		var r struct {
			Source struct{ Revision, Refused, Reason string }
		}
		json.Unmarshal([]byte(body), &r)
		return r.Source.Revision, r.Source.Refused, r.Source.Reason
	}
	ssl := func() bool {
		_, body := d.get(t, "/v1/instances/search-db", d.viewer)
		return strings.Contains(body, `"ssl": true`)
	}
	waitFor(t, "the signed revision applied", func() bool { a, _, _ := source(); return a == c1 })

	// An unsigned commit: refused, reported, never planned.
	c2 := commit(mallory, "enabled", "ssl on, unsigned")
	waitFor(t, "the unsigned revision refused", func() bool { _, r, _ := source(); return r == c2 })
	if a, _, reason := source(); a != c1 || !strings.Contains(reason, "not signed") || !strings.Contains(reason, c2[:7]) {
		t.Errorf("source after an unsigned commit: applied %s, reason %q; want %s kept and the commit named as not signed", a, reason, c1)
	}
	if ssl() {
		t.Error("the unsigned revision's ssl: enabled was planned")
	}
	if _, metrics := d.get(t, "/metrics", ""); !strings.Contains(metrics, "\nreconciler_source_refused 1\n") ||
		!strings.Contains(metrics, "\nreconciler_source_refused_revisions_total 1\n") {
		t.Error("the refusal is not in the metrics")
	}
	// Strict: a signed commit on top does not launder the unsigned one.
	c3 := commit(alice, "enabled", "signed, on top")
	waitFor(t, "the signed commit on top refused too", func() bool { _, r, _ := source(); return r == c3 })

	// diff refuses the same revision, names the commit, and takes c1.
	code, _, stderr := reconcile(t, "diff", repo.Dir, "--rev", c3, "--base", c1, "--verify-commits", "strict", "--allowed-signers", signers)
	if code != 1 || !strings.Contains(stderr, c2[:7]) || !strings.Contains(stderr, "not signed") {
		t.Errorf("diff --verify-commits strict over an unsigned commit = %d %q; want 1 naming %s", code, stderr, c2[:7])
	}
	if code, _, stderr := reconcile(t, "diff", repo.Dir, "--rev", c3, "--verify-commits", "head", "--allowed-signers", signers); code == 1 {
		t.Errorf("diff --verify-commits head of a signed commit = 1: %s", stderr)
	}

	// A force-push that drops the refused commits leaves the applied one
	// in the history: a signed commit on it is simply taken.
	repo.Git("reset", "-q", "--hard", c1)
	c4 := commit(alice, "enabled", "ssl on, signed, after a force-push")
	waitFor(t, "the signed commit after the force-push applied", func() bool { a, r, _ := source(); return a == c4 && r == "" })
	waitFor(t, "its ssl: enabled planned", ssl)

	// One that drops an applied commit rewrites history: refused until an
	// admin accepts it.
	repo.Git("reset", "-q", "--hard", c1)
	c5 := commit(alice, "disabled", "ssl off again, after rewriting history")
	waitFor(t, "the rewritten history refused", func() bool { _, r, _ := source(); return r == c5 })
	if a, _, reason := source(); a != c4 || !strings.Contains(reason, "history rewritten") {
		t.Errorf("after a rewrite: applied %s, reason %q; want %s kept, history rewritten", a, reason, c4)
	}
	if !ssl() {
		t.Error("the rewritten revision's ssl: disabled was planned before it was accepted")
	}
	if code, body := d.do(t, "POST", "/mgmt/source/accept?revision="+c5, d.viewer); code != 403 {
		t.Errorf("a viewer accepting a revision: %d %s, want 403", code, body)
	}
	if code, body := d.do(t, "POST", "/mgmt/source/accept?revision="+c5, d.admin); code != 202 {
		t.Fatalf("accept: %d %s", code, body)
	}
	waitFor(t, "the accepted revision applied", func() bool { a, r, _ := source(); return a == c5 && r == "" })
	waitFor(t, "its ssl: disabled planned", func() bool { return !ssl() })
}
