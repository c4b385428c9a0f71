package none_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/none"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

// The "none" provider cannot pass vaulttest.TestIssuer: that contract is
// about issuing certificates, and refusing to issue one is this provider's
// whole job. These tests check that refusal directly.

func TestIssuer(t *testing.T) {
	ctx := context.Background()
	iss := none.New()
	tests := []struct {
		name string
		call func() error
		want string // the error; empty means none
		is   error  // what the error must wrap
	}{
		{
			name: "an instance asking for a certificate is told how to resolve it",
			call: func() error {
				c, err := iss.Issue(ctx, vaulttest.DefaultRequest())
				if c != nil {
					t.Errorf("Issue returned a certificate: %+v", c)
				}
				return err
			},
			want: `issue certificate for orders-db: this key provider issues no certificates: the instance asks for ssl: enabled but its key provider is "none"; set spec.ssl: disabled, or choose a provider that issues certificates in spec.tls.provider (vault, local, inline, href)`,
			is:   vault.ErrNoSSL,
		},
		{
			name: "there is no CA chain",
			call: func() error {
				chain, err := iss.CAChain(ctx)
				if chain != nil {
					t.Errorf("CAChain returned %q", chain)
				}
				return err
			},
			want: `read CA chain: this key provider issues no certificates: the key provider "none" has no CA; choose a provider that issues certificates in spec.tls.provider`,
			is:   vault.ErrNoSSL,
		},
		{
			name: "revoking succeeds, since nothing was issued",
			call: func() error { return iss.Revoke(ctx, "01:02:03") },
		},
		{
			name: "revoking again succeeds too",
			call: func() error { return iss.Revoke(ctx, "01:02:03") },
		},
		{
			name: "the zero value works",
			call: func() error {
				_, err := (&none.Issuer{}).Issue(ctx, vault.CertificateRequest{Instance: "x"})
				return err
			},
			want: `issue certificate for x: this key provider issues no certificates: the instance asks for ssl: enabled but its key provider is "none"; set spec.ssl: disabled, or choose a provider that issues certificates in spec.tls.provider (vault, local, inline, href)`,
			is:   vault.ErrNoSSL,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("error %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
		})
	}
}
