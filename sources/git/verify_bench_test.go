package git_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/sources/git"
	"github.com/reconciler-dev/reconciler/sources/signature"
	"github.com/reconciler-dev/reconciler/sources/signature/signaturetest"
)

// BenchmarkVerifyStrict verifies 100 signed commits since the last
// revision in strict mode, SSH and GPG, and walks them without verifying
// (mode off, the rewrite check alone). ns/commit is the cost per commit.
func BenchmarkVerifyStrict(b *testing.B) {
	const commits = 100
	signaturetest.NeedTools(b, "git", "ssh-keygen", "gpg", "gpgconf")
	keys := b.TempDir()
	ssh := signaturetest.NewSSHKey(b, "alice")
	allowed := filepath.Join(keys, "allowed_signers")
	if err := os.WriteFile(allowed, []byte(ssh.AllowedSigner("alice@example.com", "")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	gpg := signaturetest.NewGPG(b, time.Time{})
	carol := gpg.NewKey(b, "Carol <carol@example.com>", "never")
	keyring := gpg.Export(b, filepath.Join(keys, "keyring.asc"), true)
	v, err := signature.New(signature.Config{AllowedSigners: allowed, GPGKeyring: keyring})
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct {
		name string
		key  signaturetest.Identity
		mode signature.Mode
	}{
		{"ssh", signaturetest.Identity{Name: "Alice", Email: "alice@example.com", Key: ssh}, signature.ModeStrict},
		{"gpg", signaturetest.Identity{Name: "Carol", Email: "carol@example.com", Key: carol}, signature.ModeStrict},
		{"walk-only", signaturetest.Identity{Name: "Alice", Email: "alice@example.com"}, signature.ModeOff},
	} {
		b.Run(bb.name, func(b *testing.B) {
			ctx := context.Background()
			r := signaturetest.NewRepo(b)
			// An older history below the range, which the walk must not read.
			for range 200 {
				r.Commit(signaturetest.Identity{Name: "Old", Email: "old@example.com"}, "old")
			}
			from := r.Git("rev-parse", "HEAD")
			for range commits {
				r.Commit(bb.key, "change")
			}
			src, err := git.Open(ctx, r.Dir)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for b.Loop() {
				report, err := src.Verify(ctx, v, bb.mode, from, "main")
				if err != nil {
					b.Fatal(err)
				}
				if bb.mode == signature.ModeStrict && len(report.Signers) != commits {
					b.Fatalf("verified %d commits, want %d", len(report.Signers), commits)
				}
				n++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*commits), "ns/commit")
		})
	}
}
