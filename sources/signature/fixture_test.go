package signature_test

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/reconciler-dev/reconciler/sources/signature"
	"github.com/reconciler-dev/reconciler/sources/signature/signaturetest"
)

// fixtures holds commits signed with the real tools and the public keys
// that verify them, for the tests and examples that run without the
// tools. TestUpdateFixtures rewrites them.
var fixtures = filepath.Join("testdata", "fixture")

// TestUpdateFixtures makes the fixtures anew when run with -update.
func TestUpdateFixtures(t *testing.T) {
	if f := flag.Lookup("update"); f == nil || f.Value.String() != "true" {
		t.Skip("run with -update to make the fixtures anew")
	}
	alice := signaturetest.NewSSHKey(t, "alice")
	gpg := signaturetest.NewGPG(t, time.Time{})
	carol := gpg.NewKey(t, "Carol <carol@example.com>", "never")
	r := signaturetest.NewRepo(t)
	commits := map[string]string{
		"unsigned": r.Commit(signaturetest.Identity{Name: "Alice", Email: "alice@example.com"}, "Add orders-db"),
		"ssh":      r.Commit(signaturetest.Identity{Name: "Alice", Email: "alice@example.com", Key: alice}, "Enable TLS on orders-db"),
		"gpg":      r.Commit(signaturetest.Identity{Name: "Carol", Email: "carol@example.com", Key: carol}, "Require TLS 1.3 on orders-db"),
	}
	if err := os.MkdirAll(fixtures, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(fixtures, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("allowed_signers", []byte("# The fixture's signers.\n"+alice.AllowedSigner("alice@example.com", `namespaces="git"`)+"\n"))
	gpg.Export(t, filepath.Join(fixtures, "keyring.asc"), true)
	repo, err := gogit.PlainOpen(r.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, hash := range commits {
		obj, err := repo.Storer.EncodedObject(plumbing.CommitObject, plumbing.NewHash(hash))
		if err != nil {
			t.Fatal(err)
		}
		rd, err := obj.Reader()
		if err != nil {
			t.Fatal(err)
		}
		var raw []byte
		if raw, err = io.ReadAll(rd); err != nil {
			t.Fatal(err)
		}
		write(name+".commit", raw)
	}
}

// fixtureCommit reads the commit object testdata/fixture/name.commit.
func fixtureCommit(t testing.TB, name string) *object.Commit {
	t.Helper()
	c, err := readCommit(filepath.Join(fixtures, name+".commit"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readCommit decodes the raw commit object in file.
func readCommit(file string) (*object.Commit, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	obj := &plumbing.MemoryObject{}
	obj.SetType(plumbing.CommitObject)
	if _, err := obj.Write(raw); err != nil {
		return nil, err
	}
	return object.DecodeCommit(nil, obj)
}

func TestFixtures(t *testing.T) {
	v, err := signature.New(signature.Config{
		AllowedSigners: filepath.Join(fixtures, "allowed_signers"),
		GPGKeyring:     filepath.Join(fixtures, "keyring.asc"),
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]signature.Format{"ssh": signature.FormatSSH, "gpg": signature.FormatOpenPGP} {
		s, err := v.VerifyCommit(fixtureCommit(t, name))
		if err != nil || s.Format != want {
			t.Errorf("VerifyCommit(%s) = %+v, %v; want a %s signer", name, s, err, want)
		}
	}
	if _, err := v.VerifyCommit(fixtureCommit(t, "unsigned")); err == nil {
		t.Error("VerifyCommit(unsigned) accepted it")
	}
}
