package none

import (
	"context"
	"fmt"

	"github.com/reconciler-dev/reconciler/vault"
)

var _ vault.Issuer = (*Issuer)(nil)

// Issuer is the provider that issues no certificates. Its zero value is
// ready to use, and it is safe for concurrent use.
type Issuer struct{}

// New returns an Issuer.
func New() *Issuer { return &Issuer{} }

// Issue fails with an error wrapping vault.ErrNoSSL: an instance that asks
// for a certificate wants SSL, which this provider cannot give it.
func (*Issuer) Issue(_ context.Context, req vault.CertificateRequest) (*vault.Certificate, error) {
	return nil, fmt.Errorf(`issue certificate for %s: %w: the instance asks for ssl: enabled but its key provider is "none"; set spec.ssl: disabled, or choose a provider that issues certificates in spec.tls.provider (vault, local, inline, href)`,
		req.Instance, vault.ErrNoSSL)
}

// Revoke returns nil: nothing was issued, so there is nothing to revoke,
// and a revoke of any serial succeeds, as many times as it is asked.
func (*Issuer) Revoke(context.Context, string) error { return nil }

// CAChain fails with an error wrapping vault.ErrNoSSL: there is no CA.
func (*Issuer) CAChain(context.Context) ([]byte, error) {
	return nil, fmt.Errorf(`read CA chain: %w: the key provider "none" has no CA; choose a provider that issues certificates in spec.tls.provider`, vault.ErrNoSSL)
}
