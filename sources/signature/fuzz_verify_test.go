package signature_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/reconciler-dev/reconciler/sources/signature"
)

// FuzzVerifyCommit puts arbitrary signatures on a commit: a signature is
// what an attacker controls. Verification must not panic, must refuse
// with an *Error that does not quote the signature, and may accept only a
// signature of a trusted key.
func FuzzVerifyCommit(f *testing.F) {
	v, err := signature.New(signature.Config{
		AllowedSigners: filepath.Join(fixtures, "allowed_signers"),
		GPGKeyring:     filepath.Join(fixtures, "keyring.asc"),
	})
	if err != nil {
		f.Fatal(err)
	}
	ssh, gpg := fixtureCommit(f, "ssh"), fixtureCommit(f, "gpg")
	f.Add(ssh.PGPSignature, false)
	f.Add(gpg.PGPSignature, true)
	f.Add(strings.Replace(ssh.PGPSignature, "A", "B", 1), false)
	f.Add(ssh.PGPSignature+gpg.PGPSignature, false)
	f.Add("-----BEGIN SSH SIGNATURE-----\n-----END SSH SIGNATURE-----\n", false)
	f.Add("-----BEGIN PGP SIGNATURE-----\n\n=abcd\n-----END PGP SIGNATURE-----\n", true)
	f.Fuzz(func(t *testing.T, sig string, onGPG bool) {
		base := ssh
		if onGPG {
			base = gpg
		}
		c := *base
		c.PGPSignature = sig
		obj := &plumbing.MemoryObject{}
		if err := c.Encode(obj); err != nil {
			t.Skip(err)
		}
		decoded, err := object.DecodeCommit(nil, obj)
		if err != nil {
			t.Skip(err)
		}
		s, err := v.VerifyCommit(decoded)
		if err == nil {
			if s.Fingerprint == "" || s.Principal == "" || s.Commit != decoded.Hash.String() {
				t.Fatalf("accepted with an incomplete signer %+v", s)
			}
			return
		}
		var verr *signature.Error
		if !errors.As(err, &verr) {
			t.Fatalf("VerifyCommit() error = %v, not a *signature.Error", err)
		}
		if strings.Contains(err.Error(), "-----BEGIN") || (len(strings.TrimSpace(decoded.PGPSignature)) > 16 && strings.Contains(err.Error(), strings.TrimSpace(decoded.PGPSignature))) {
			t.Fatalf("error quotes the signature: %v", err)
		}
	})
}
