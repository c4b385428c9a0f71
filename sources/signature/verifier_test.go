package signature_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/sources/signature"
	"github.com/reconciler-dev/reconciler/sources/signature/signaturetest"
)

// world is a repository of commits signed, or not, in every way the tests
// need, and the keys that made them.
type world struct {
	git     *signaturetest.Repo
	dir     string
	repo    *gogit.Repository
	alice   *signaturetest.SSHKey // listed for alice@example.com
	mallory *signaturetest.SSHKey // listed nowhere
	keyring string                // armored: carol, revoked erin, expired dave
	binary  string                // binary: carol only
	carol   *signaturetest.GPGKey
	dave    *signaturetest.GPGKey
	erin    *signaturetest.GPGKey
	frank   *signaturetest.GPGKey // in no keyring
	commits map[string]string     // name -> hash
}

func newWorld(t *testing.T) *world {
	t.Helper()
	signaturetest.NeedTools(t, "git", "ssh-keygen", "gpg", "gpgconf")
	keys := t.TempDir()
	w := &world{commits: map[string]string{}}
	w.alice = signaturetest.NewSSHKey(t, "alice")
	w.mallory = signaturetest.NewSSHKey(t, "mallory")

	trusted := signaturetest.NewGPG(t, time.Time{})
	w.carol = trusted.NewKey(t, "Carol <carol@example.com>", "never")
	w.binary = trusted.Export(t, filepath.Join(keys, "carol.gpg"), false)
	w.erin = trusted.NewKey(t, "Erin <erin@example.com>", "never")
	past := signaturetest.NewGPG(t, time.Date(2020, 1, 1, 12, 0, 0, 0, time.UTC))
	w.dave = past.NewKey(t, "Dave <dave@example.com>", "1d")
	w.frank = signaturetest.NewGPG(t, time.Time{}).NewKey(t, "Frank <frank@example.com>", "never")

	r := signaturetest.NewRepo(t)
	w.git, w.dir = r, r.Dir
	alice := signaturetest.Identity{Name: "Alice", Email: "alice@example.com", Key: w.alice}
	w.commits["unsigned"] = r.Commit(signaturetest.Identity{Name: "Alice", Email: "alice@example.com"}, "unsigned")
	w.commits["ssh"] = r.Commit(alice, "signed by alice")
	w.commits["ssh as bob"] = r.Commit(signaturetest.Identity{Name: "Bob", Email: "bob@example.com", Key: w.alice}, "alice's key, bob's name")
	w.commits["mallory"] = r.Commit(signaturetest.Identity{Name: "Alice", Email: "alice@example.com", Key: w.mallory}, "signed by mallory")
	w.commits["gpg"] = r.Commit(signaturetest.Identity{Name: "Carol", Email: "carol@example.com", Key: w.carol}, "signed by carol")
	w.commits["gpg erin"] = r.Commit(signaturetest.Identity{Name: "Erin", Email: "erin@example.com", Key: w.erin}, "signed by erin")
	w.commits["gpg dave"] = r.Commit(signaturetest.Identity{Name: "Dave", Email: "dave@example.com", Key: w.dave}, "signed by dave")
	w.commits["gpg frank"] = r.Commit(signaturetest.Identity{Name: "Frank", Email: "frank@example.com", Key: w.frank}, "signed by frank")
	w.erin.Revoke(t)
	w.keyring = filepath.Join(keys, "keyring.asc")
	trusted.Export(t, w.keyring, true)
	appendFile(t, w.keyring, past.Export(t, filepath.Join(keys, "dave.asc"), true))

	var err error
	if w.repo, err = gogit.PlainOpen(w.dir); err != nil {
		t.Fatal(err)
	}
	// Commits git would not make: a signature moved to another commit, a
	// signed commit edited, an SSH signature for another namespace.
	w.commits["moved ssh"] = w.rewrite(t, w.commits["unsigned"], func(c *object.Commit) { c.PGPSignature = w.commit(t, "ssh").PGPSignature })
	w.commits["edited ssh"] = w.rewrite(t, w.commits["ssh"], func(c *object.Commit) { c.Message = "signed by alice, and then some\n" })
	w.commits["moved gpg"] = w.rewrite(t, w.commits["unsigned"], func(c *object.Commit) { c.PGPSignature = w.commit(t, "gpg").PGPSignature })
	w.commits["namespace file"] = w.rewrite(t, w.commits["unsigned"], func(c *object.Commit) {
		c.PGPSignature = w.alice.Sign(t, payload(t, c), "file")
	})
	w.commits["two signatures"] = w.rewrite(t, w.commits["ssh"], func(c *object.Commit) {
		c.PGPSignature += w.commit(t, "gpg").PGPSignature
	})
	w.commits["x509"] = w.rewrite(t, w.commits["unsigned"], func(c *object.Commit) {
		c.PGPSignature = "-----BEGIN SIGNED MESSAGE-----\nMIIB\n-----END SIGNED MESSAGE-----\n"
	})
	return w
}

func appendFile(t *testing.T, dst, src string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dst, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// commit returns the commit named name, read from the repository.
func (w *world) commit(t *testing.T, name string) *object.Commit {
	t.Helper()
	h, ok := w.commits[name]
	if !ok {
		t.Fatalf("no commit %q", name)
	}
	c, err := w.repo.CommitObject(plumbing.NewHash(h))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rewrite stores a copy of the commit hash changed by edit and returns the
// copy's hash.
func (w *world) rewrite(t *testing.T, hash string, edit func(*object.Commit)) string {
	t.Helper()
	c, err := w.repo.CommitObject(plumbing.NewHash(hash))
	if err != nil {
		t.Fatal(err)
	}
	copied := *c
	edit(&copied)
	obj := w.repo.Storer.NewEncodedObject()
	if err := copied.Encode(obj); err != nil {
		t.Fatal(err)
	}
	h, err := w.repo.Storer.SetEncodedObject(obj)
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// payload returns the bytes a signature of c covers.
func payload(t *testing.T, c *object.Commit) []byte {
	t.Helper()
	var obj plumbing.MemoryObject
	if err := c.EncodeWithoutSignature(&obj); err != nil {
		t.Fatal(err)
	}
	r, err := obj.Reader()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyCommit(t *testing.T) {
	w := newWorld(t)
	const (
		sshOnly = iota
		gpgOnly
		both
	)
	tests := []struct {
		name    string
		allowed string // allowed_signers, {alice} and {mallory} for the public keys
		trust   int
		keyring string // "" for w.keyring
		commit  string
		want    *signature.Signer // {fields} expanded
		reason  error
		wantErr string // {fields} expanded
	}{
		{
			name:    "good ssh signature",
			allowed: "alice@example.com {alice}",
			commit:  "ssh",
			want:    &signature.Signer{Commit: "{commit}", Format: signature.FormatSSH, Fingerprint: "{alicefp}", Principal: "alice@example.com", TrustedBy: "{allowed}:1"},
		},
		{
			name:    "ssh line with options and comments around",
			allowed: "# ops team\n\n  bob@example.com {mallory}\nalice@example.com,carol@example.com namespaces=\"file,git\",valid-after=\"20240101Z\",valid-before=\"20260101Z\" {alice}\n",
			commit:  "ssh",
			want:    &signature.Signer{Commit: "{commit}", Format: signature.FormatSSH, Fingerprint: "{alicefp}", Principal: "alice@example.com", TrustedBy: "{allowed}:4"},
		},
		{
			name:    "wildcard principal",
			allowed: "*@example.com {alice}",
			commit:  "ssh as bob",
			want:    &signature.Signer{Commit: "{commit}", Format: signature.FormatSSH, Fingerprint: "{alicefp}", Principal: "bob@example.com", TrustedBy: "{allowed}:1"},
		},
		{
			name:    "a later line for the key allows what an earlier refuses",
			allowed: "alice@example.com namespaces=\"file\" {alice}\nalice@example.com {alice}",
			commit:  "ssh",
			want:    &signature.Signer{Commit: "{commit}", Format: signature.FormatSSH, Fingerprint: "{alicefp}", Principal: "alice@example.com", TrustedBy: "{allowed}:2"},
		},
		{
			name:    "unsigned",
			allowed: "alice@example.com {alice}",
			commit:  "unsigned",
			reason:  signature.ErrNotSigned,
			wantErr: "commit {short}: not signed: sign it with git commit -S using an SSH key in allowed_signers {allowed} (git config gpg.format ssh)",
		},
		{
			name:    "unsigned, both kinds of keys trusted",
			allowed: "alice@example.com {alice}",
			trust:   both,
			commit:  "unsigned",
			reason:  signature.ErrNotSigned,
			wantErr: "commit {short}: not signed: sign it with git commit -S using a key in allowed_signers {allowed} or in GPG keyring {keyring}",
		},
		{
			name:    "signed by an unknown ssh key",
			allowed: "alice@example.com {alice}",
			commit:  "mallory",
			reason:  signature.ErrUnknownKey,
			wantErr: "commit {short}: signed by an unknown key: signed by {malloryfp} which is not in allowed_signers {allowed} (add it, or sign with a listed key)",
		},
		{
			name:    "committer is not the key's principal",
			allowed: "alice@example.com {alice}\n*@ops.example.com {alice}",
			commit:  "ssh as bob",
			reason:  signature.ErrWrongPrincipal,
			wantErr: `commit {short}: committer is not a principal of the key: committer "bob@example.com" is not a principal of {alicefp} in allowed_signers {allowed} (line 1: alice@example.com; line 2: *@ops.example.com): commit as one of them, or add the address to the key's line`,
		},
		{
			name:    "negated principal",
			allowed: "*@example.com,!bob@example.com {alice}",
			commit:  "ssh as bob",
			reason:  signature.ErrWrongPrincipal,
		},
		{
			name:    "key listed for other namespaces",
			allowed: "alice@example.com namespaces=\"file\" {alice}",
			commit:  "ssh",
			reason:  signature.ErrWrongNamespace,
			wantErr: `commit {short}: signature namespace not allowed: allowed_signers {allowed} line 1 allows {alicefp} only for namespaces "file": add git to them`,
		},
		{
			name:    "signature made for another namespace",
			allowed: "alice@example.com {alice}",
			commit:  "namespace file",
			reason:  signature.ErrWrongNamespace,
			wantErr: `commit {short}: signature namespace not allowed: the signature by {alicefp} is for namespace "file", not "git", so git did not make it: re-sign the commit with git commit --amend -S`,
		},
		{
			name:    "valid-before in the past",
			allowed: "alice@example.com valid-before=\"20241231Z\" {alice}",
			commit:  "ssh",
			reason:  signature.ErrKeyExpired,
			wantErr: "commit {short}: key expired: allowed_signers {allowed} line 1 makes {alicefp} valid until 2024-12-31 00:00:00 UTC, before the committer time 2025-01-01 00:02:00 UTC: re-sign the commit with a current key",
		},
		{
			name:    "valid-after in the future",
			allowed: "alice@example.com valid-after=\"202501010003Z\" {alice}",
			commit:  "ssh",
			reason:  signature.ErrKeyNotYetValid,
			wantErr: "commit {short}: key not yet valid: allowed_signers {allowed} line 1 makes {alicefp} valid from 2025-01-01 00:03:00 UTC, after the committer time 2025-01-01 00:02:00 UTC: sign with a key valid then, or move valid-after",
		},
		{
			name:    "ssh signature moved to another commit",
			allowed: "alice@example.com {alice}",
			commit:  "moved ssh",
			reason:  signature.ErrBadSignature,
			wantErr: "commit {short}: signature does not match the commit: key {alicefp} did not sign this commit: it was changed after signing, or the signature was copied from another commit: ssh: signature did not verify",
		},
		{
			name:    "signed commit edited",
			allowed: "alice@example.com {alice}",
			commit:  "edited ssh",
			reason:  signature.ErrBadSignature,
		},
		{
			name:    "ssh signature without allowed_signers",
			trust:   gpgOnly,
			commit:  "ssh",
			reason:  signature.ErrUnknownKey,
			wantErr: "commit {short}: signed by an unknown key: it is signed with SSH key {alicefp}, but no allowed_signers file is configured: list the key in one, or sign with a GPG key in keyring {keyring}",
		},
		{
			name:    "two signatures",
			allowed: "alice@example.com {alice}",
			trust:   both,
			commit:  "two signatures",
			reason:  signature.ErrUnsupported,
			wantErr: "commit {short}: unsupported signature: it carries 2 signatures, and only one is checked: re-sign it with git commit --amend -S",
		},
		{
			name:    "x509",
			allowed: "alice@example.com {alice}",
			commit:  "x509",
			reason:  signature.ErrUnsupported,
		},
		{
			name:   "good gpg signature",
			trust:  gpgOnly,
			commit: "gpg",
			want:   &signature.Signer{Commit: "{commit}", Format: signature.FormatOpenPGP, Fingerprint: "{carolfp}", Principal: "Carol <carol@example.com>", TrustedBy: "{keyring}"},
		},
		{
			name:    "good gpg signature, binary keyring",
			trust:   gpgOnly,
			keyring: "binary",
			commit:  "gpg",
			want:    &signature.Signer{Commit: "{commit}", Format: signature.FormatOpenPGP, Fingerprint: "{carolfp}", Principal: "Carol <carol@example.com>", TrustedBy: "{keyring}"},
		},
		{
			name:    "signed by an unknown gpg key",
			trust:   gpgOnly,
			commit:  "gpg frank",
			reason:  signature.ErrUnknownKey,
			wantErr: "commit {short}: signed by an unknown key: signed by GPG key {frankfp} which is not in keyring {keyring} (add it with gpg --export, or sign with a key in it)",
		},
		{
			name:    "expired gpg key",
			trust:   gpgOnly,
			commit:  "gpg dave",
			reason:  signature.ErrKeyExpired,
			wantErr: "commit {short}: key expired: GPG key {davefp} (Dave <dave@example.com>) expired on 2020-01-02 12:00:00 UTC: extend it (gpg --quick-set-expire) and export it to keyring {keyring} again, or sign with a current key",
		},
		{
			name:    "revoked gpg key",
			trust:   gpgOnly,
			commit:  "gpg erin",
			reason:  signature.ErrKeyRevoked,
			wantErr: "commit {short}: key revoked: GPG key {erinfp} (Erin <erin@example.com>) is revoked: sign with another key in keyring {keyring}",
		},
		{
			name:    "gpg signature moved to another commit",
			trust:   gpgOnly,
			commit:  "moved gpg",
			reason:  signature.ErrBadSignature,
			wantErr: "commit {short}: signature does not match the commit: GPG key {carolfp} did not sign this commit: it was changed after signing, or the signature was copied from another commit: openpgp: invalid signature: EdDSA verification failure",
		},
		{
			name:    "gpg signature without a keyring",
			allowed: "alice@example.com {alice}",
			commit:  "gpg",
			reason:  signature.ErrUnknownKey,
			wantErr: "commit {short}: signed by an unknown key: it is signed with GPG key {carolfp}, but no GPG keyring is configured: export the key to one, or sign with an SSH key in allowed_signers {allowed}",
		},
		{
			name:    "both trusted, ssh commit",
			allowed: "alice@example.com {alice}",
			trust:   both,
			commit:  "ssh",
			want:    &signature.Signer{Commit: "{commit}", Format: signature.FormatSSH, Fingerprint: "{alicefp}", Principal: "alice@example.com", TrustedBy: "{allowed}:1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg signature.Config
			if tt.trust != gpgOnly {
				cfg.AllowedSigners = filepath.Join(t.TempDir(), "allowed_signers")
				allowed := strings.NewReplacer("{alice}", w.alice.PublicKey, "{mallory}", w.mallory.PublicKey).Replace(tt.allowed)
				if err := os.WriteFile(cfg.AllowedSigners, []byte(allowed), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tt.trust != sshOnly {
				cfg.GPGKeyring = w.keyring
				if tt.keyring == "binary" {
					cfg.GPGKeyring = w.binary
				}
			}
			v, err := signature.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			c := w.commit(t, tt.commit)
			expand := strings.NewReplacer(
				"{commit}", c.Hash.String(), "{short}", c.Hash.String()[:7],
				"{allowed}", cfg.AllowedSigners, "{keyring}", cfg.GPGKeyring,
				"{alicefp}", w.alice.Fingerprint, "{malloryfp}", w.mallory.Fingerprint,
				"{carolfp}", w.carol.Fingerprint, "{davefp}", w.dave.Fingerprint,
				"{erinfp}", w.erin.Fingerprint, "{frankfp}", w.frank.Fingerprint,
			).Replace
			var want *signature.Signer
			if tt.want != nil {
				want = &signature.Signer{
					Commit: expand(tt.want.Commit), Format: tt.want.Format, Fingerprint: expand(tt.want.Fingerprint),
					Principal: tt.want.Principal, TrustedBy: expand(tt.want.TrustedBy),
				}
			}

			got, err := v.VerifyCommit(c)
			if tt.trust == sshOnly {
				agreeWithGit(t, w, cfg.AllowedSigners, c, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("VerifyCommit() signer (-want +got):\n%s", diff)
			}
			if tt.reason == nil {
				if err != nil {
					t.Fatalf("VerifyCommit() error = %v", err)
				}
				return
			}
			if !errors.Is(err, tt.reason) {
				t.Fatalf("VerifyCommit() error = %v, want %v", err, tt.reason)
			}
			var verr *signature.Error
			if !errors.As(err, &verr) || verr.Commit != c.Hash.String() {
				t.Errorf("VerifyCommit() error = %#v, want a *signature.Error for commit %s", err, c.Hash)
			}
			if tt.wantErr != "" {
				if diff := cmp.Diff(expand(tt.wantErr), err.Error()); diff != "" {
					t.Errorf("VerifyCommit() error message (-want +got):\n%s", diff)
				}
			}
			if strings.Contains(err.Error(), "BEGIN") || (c.PGPSignature != "" && strings.Contains(err.Error(), c.PGPSignature)) {
				t.Errorf("VerifyCommit() error quotes the signature: %v", err)
			}
		})
	}
}

// agreeWithGit checks that git verify-commit, with the same allowed_signers
// file, accepts c as VerifyCommit did (err is its error), but for the
// committer's principal, which git does not check.
func agreeWithGit(t *testing.T, w *world, allowed string, c *object.Commit, err error) {
	t.Helper()
	out, gitErr := w.git.TryGit("-c", "gpg.ssh.allowedSignersFile="+allowed, "verify-commit", c.Hash.String())
	if errors.Is(err, signature.ErrWrongPrincipal) {
		if gitErr != nil {
			t.Errorf("git verify-commit refused a commit refused only for its principal:\n%s", out)
		}
		return
	}
	if (gitErr == nil) != (err == nil) {
		t.Errorf("git verify-commit says %v, VerifyCommit %v:\n%s", gitErr, err, out)
	}
}
