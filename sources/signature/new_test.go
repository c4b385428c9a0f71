package signature_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/sources/signature"
	"github.com/reconciler-dev/reconciler/sources/signature/signaturetest"
)

func TestNew(t *testing.T) {
	gpg := signaturetest.NewGPG(t, time.Time{})
	carol := gpg.NewKey(t, "Carol <carol@example.com>", "never")
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyring, err := os.ReadFile(filepath.Join(fixtures, "keyring.asc"))
	if err != nil {
		t.Fatal(err)
	}
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(keyring))
	if err != nil {
		t.Fatal(err)
	}
	fixtureFP := strings.ToUpper(hex.EncodeToString(el[0].PrimaryKey.Fingerprint))
	twice := file("twice.asc", string(keyring)+string(keyring))
	secret := gpg.ExportSecret(t, filepath.Join(dir, "secret.gpg"), false)
	armoredSecret := gpg.ExportSecret(t, filepath.Join(dir, "secret.asc"), true)
	keybox := filepath.Join(gpg.Home, "pubring.kbx")
	empty := file("empty", "")
	missing := filepath.Join(dir, "missing")
	badLine := file("allowed_signers", "alice@example.com\n")
	tests := []struct {
		name    string
		cfg     signature.Config
		wantErr string
	}{
		{"nothing trusted", signature.Config{}, "configure commit verification: no trusted keys: give an allowed_signers file, a GPG keyring, or both"},
		{"missing allowed_signers", signature.Config{AllowedSigners: missing}, "read allowed_signers: open " + missing + ": no such file or directory"},
		{"bad allowed_signers line", signature.Config{AllowedSigners: badLine}, `parse allowed_signers ` + badLine + `: line 1: no key after the principals "alice@example.com": write PRINCIPALS [OPTIONS] KEYTYPE BASE64KEY [COMMENT], as in: alice@example.com namespaces="git" ssh-ed25519 AAAA...`},
		{"missing keyring", signature.Config{GPGKeyring: missing}, "read GPG keyring: open " + missing + ": no such file or directory"},
		{"empty keyring", signature.Config{GPGKeyring: empty}, "read GPG keyring " + empty + ": no keys in it: export them with gpg --export --armor KEY > " + empty},
		{"a key twice", signature.Config{GPGKeyring: twice}, "read GPG keyring " + twice + ": key " + fixtureFP + " is in it twice: export it once, with gpg --export, which merges its revocations and new expiry dates"},
		{"private key", signature.Config{GPGKeyring: secret}, "read GPG keyring " + secret + ": it holds the private key of " + carol.Fingerprint + ": export only public keys, with gpg --export KEY"},
		{"armored private key", signature.Config{GPGKeyring: armoredSecret}, "read GPG keyring " + armoredSecret + ": it holds a PGP PRIVATE KEY BLOCK, not public keys: export only public keys, with gpg --export --armor KEY"},
		{"GnuPG keybox", signature.Config{GPGKeyring: keybox}, "read GPG keyring " + keybox + ": it is a GnuPG keybox (pubring.kbx), not a keyring: export the keys with gpg --export KEY > FILE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := signature.New(tt.cfg)
			if err == nil {
				t.Fatalf("New() = %v, want an error", v)
			}
			if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
				t.Errorf("New() error (-want +got):\n%s", diff)
			}
		})
	}
}
