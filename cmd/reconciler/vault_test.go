package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
)

func TestVaultBootstrap(t *testing.T) {
	s := vaultservertest.Dev(t)
	t.Setenv("VAULT_ADDR", s.Addr)
	t.Setenv("VAULT_TOKEN", s.Token)
	secretFile := filepath.Join(t.TempDir(), "secret-id")

	code, out, errOut := reconcile(t, "vault", "bootstrap", "--secret-id-file", secretFile)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	for _, want := range []string{"✓ enabled the pki engine at pki/", "✓ generated a root CA in pki/", "✓ created the derived transit key transit/keys/reconciler", "✓ wrote the policy reconciler", "role-id: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	secretID, err := os.ReadFile(secretFile)
	if err != nil || len(strings.TrimSpace(string(secretID))) == 0 {
		t.Fatalf("no secret-id written: %v", err)
	}
	if strings.Contains(out+errOut, strings.TrimSpace(string(secretID))) || strings.Contains(out+errOut, s.Token) {
		t.Error("the secret-id or the admin token was printed")
	}

	code, out, _ = reconcile(t, "vault", "bootstrap", "--secret-id-file", secretFile)
	if code != 0 || !strings.Contains(out, "nothing changed") {
		t.Errorf("second run: exit %d, output:\n%s", code, out)
	}

	t.Setenv("VAULT_TOKEN", "")
	code, _, errOut = reconcile(t, "vault", "bootstrap")
	if code != 1 || !strings.Contains(errOut, "set VAULT_TOKEN") {
		t.Errorf("without a token: exit %d, stderr %q", code, errOut)
	}
}
