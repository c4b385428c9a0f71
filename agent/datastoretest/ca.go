package datastoretest

import (
	"context"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/local"
)

// CA issues test certificates from a private vault/local provider, the
// way the reconciler issues them in production.
type CA struct {
	Provider *local.Provider
	// ChainPEM is the CA chain clients trust.
	ChainPEM []byte
}

// NewCA makes a fresh local key provider (its own KEK and root) for one
// test.
func NewCA(t testing.TB) *CA {
	t.Helper()
	kek, err := local.GenerateKEK()
	if err != nil {
		t.Fatalf("generate KEK: %v", err)
	}
	dir, err := os.MkdirTemp("", "reconciler-ca-")
	if err != nil {
		t.Fatalf("make CA directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p, err := local.New(context.Background(), dir, kek)
	if err != nil {
		t.Fatalf("start local CA: %v", err)
	}
	chain, err := p.CAChain(context.Background())
	if err != nil {
		t.Fatalf("read CA chain: %v", err)
	}
	return &CA{Provider: p, ChainPEM: chain}
}

// Issue issues a certificate for instance covering hosts (127.0.0.1 and
// localhost when none are given).
func (ca *CA) Issue(t testing.TB, instance string, hosts ...string) *vault.Certificate {
	t.Helper()
	if len(hosts) == 0 {
		hosts = []string{"127.0.0.1", "localhost"}
	}
	c, err := ca.Provider.Issue(context.Background(), vault.CertificateRequest{Instance: instance, Hosts: hosts, TTL: time.Hour})
	if err != nil {
		t.Fatalf("issue certificate: %v", err)
	}
	return c
}

// Pool is the CA as a root pool for clients.
func (ca *CA) Pool(t testing.TB) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.ChainPEM) {
		t.Fatal("CA chain holds no certificate")
	}
	return pool
}
