package hashicorp

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
)

// bootstrapped runs Bootstrap against s and returns an AppRole Config for
// the reconciler, as a real deployment would use.
func bootstrapped(t testing.TB, s *vaultservertest.Server) Config {
	t.Helper()
	secretFile := filepath.Join(t.TempDir(), "secret-id")
	res, err := Bootstrap(context.Background(), s.Client(), BootstrapOptions{SecretIDFile: secretFile})
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	return Config{
		Address: s.Addr,
		AppRole: &AppRole{RoleID: res.RoleID, SecretIDFile: secretFile},
		Retry:   Backoff{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond, Elapsed: 60 * time.Second},
	}
}
