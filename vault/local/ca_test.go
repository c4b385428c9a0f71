package local_test

import (
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/local"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

func TestIssueRefusesBadRequests(t *testing.T) {
	p, _, _ := newProvider(t)
	good := vaulttest.DefaultRequest()
	tests := []struct {
		name   string
		change func(r *vault.CertificateRequest)
		want   string
	}{
		{"no instance name", func(r *vault.CertificateRequest) { r.Instance = "" }, "the instance name is empty"},
		{"no hosts", func(r *vault.CertificateRequest) { r.Hosts = nil }, "no hosts given"},
		{"an empty host", func(r *vault.CertificateRequest) { r.Hosts = []string{""} }, `host "" is not`},
		{"a host with a space", func(r *vault.CertificateRequest) { r.Hosts = []string{"a b"} }, `host "a b" is not`},
		{"zero TTL", func(r *vault.CertificateRequest) { r.TTL = 0 }, "TTL 0s is not positive"},
		{"negative TTL", func(r *vault.CertificateRequest) { r.TTL = -time.Hour }, "TTL -1h0m0s is not positive"},
		{"unknown key type", func(r *vault.CertificateRequest) { r.KeyType = "dsa" }, `unknown key type "dsa"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := good
			req.Hosts = slices.Clone(good.Hosts)
			tt.change(&req)
			_, err := p.Issue(t.Context(), req)
			if !errors.Is(err, vault.ErrDenied) {
				t.Fatalf("Issue = %v, want an error wrapping vault.ErrDenied", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestIssuedCertificate(t *testing.T) {
	tests := []struct {
		name         string
		opts         []local.Option
		req          vault.CertificateRequest
		wantLifetime time.Duration
		wantDNS      []string
		wantIPs      []string
	}{
		{
			name:         "TTL honoured, SANs by kind, duplicates dropped",
			req:          vault.CertificateRequest{Instance: "orders-db", Hosts: []string{"orders-db.internal", "10.0.4.17", "::1", "orders-db.internal"}, TTL: 2 * time.Hour},
			wantLifetime: 2*time.Hour + time.Minute,
			wantDNS:      []string{"orders-db.internal"},
			wantIPs:      []string{"10.0.4.17", "::1"},
		},
		{
			name:         "TTL capped at the default maximum",
			req:          vault.CertificateRequest{Instance: "orders-db", Hosts: []string{"orders-db.internal"}, TTL: 5 * 8760 * time.Hour},
			wantLifetime: local.DefaultMaxTTL + time.Minute,
			wantDNS:      []string{"orders-db.internal"},
		},
		{
			name:         "TTL capped at a configured maximum",
			opts:         []local.Option{local.WithMaxTTL(time.Hour)},
			req:          vault.CertificateRequest{Instance: "orders-db", Hosts: []string{"orders-db.internal"}, TTL: 10 * time.Hour},
			wantLifetime: time.Hour + time.Minute,
			wantDNS:      []string{"orders-db.internal"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, _, _ := newProvider(t, tt.opts...)
			c, err := p.Issue(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			leaf, err := vault.ParseLeaf(c.CertPEM)
			if err != nil {
				t.Fatal(err)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			got := struct {
				Lifetime time.Duration
				CN       string
				DNS, IPs []string
				ExtUsage []x509.ExtKeyUsage
				IsCA     bool
				Bits     int
			}{leaf.NotAfter.Sub(leaf.NotBefore), leaf.Subject.CommonName, leaf.DNSNames, ips, leaf.ExtKeyUsage, leaf.IsCA, leaf.SerialNumber.BitLen()}
			want := got
			want.Lifetime, want.CN, want.DNS, want.IPs = tt.wantLifetime, tt.req.Instance, tt.wantDNS, tt.wantIPs
			want.ExtUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			want.IsCA = false
			if got.Bits < 64 || got.Bits > 128 { // 128 random bits; fewer than 64 set is a 2^-64 chance
				want.Bits = 128
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("certificate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCA(t *testing.T) {
	p, _, _ := newProvider(t)
	chain, err := p.CAChain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := vault.ParseLeaf(chain)
	if err != nil {
		t.Fatal(err)
	}
	type caFields struct {
		CN             string
		IsCA           bool
		MaxPathLen     int
		MaxPathLenZero bool
		KeyUsage       x509.KeyUsage
		Algorithm      x509.PublicKeyAlgorithm
		Years          int
	}
	got := caFields{ca.Subject.CommonName, ca.IsCA, ca.MaxPathLen, ca.MaxPathLenZero, ca.KeyUsage, ca.PublicKeyAlgorithm, int(ca.NotAfter.Sub(ca.NotBefore).Hours() / 24 / 365)}
	want := caFields{"reconciler local CA", true, 0, true, x509.KeyUsageCertSign | x509.KeyUsageCRLSign, x509.ECDSA, 10}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CA certificate (-want +got):\n%s", diff)
	}
}

func TestCRL(t *testing.T) {
	ctx := t.Context()
	p, _, _ := newProvider(t)
	chain, err := p.CAChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := vault.ParseLeaf(chain)
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Issue(ctx, vaulttest.DefaultRequest())
	if err != nil {
		t.Fatal(err)
	}
	// Revoked twice, plus a serial this CA never issued, written without
	// colons and in upper case.
	for _, s := range []string{c.Serial, c.Serial, "0ABCDEF1"} {
		if err := p.Revoke(ctx, s); err != nil {
			t.Fatalf("Revoke(%s): %v", s, err)
		}
	}
	var numbers []int64
	var crl *x509.RevocationList
	for range 2 {
		der, err := p.CRL(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if crl, err = x509.ParseRevocationList(der); err != nil {
			t.Fatal(err)
		}
		if err := crl.CheckSignatureFrom(ca); err != nil {
			t.Errorf("the CRL is not signed by the CA: %v", err)
		}
		numbers = append(numbers, crl.Number.Int64())
	}
	var serials []string
	for _, e := range crl.RevokedCertificateEntries {
		serials = append(serials, vault.SerialString(e.SerialNumber))
	}
	if diff := cmp.Diff([]string{c.Serial, "0a:bc:de:f1"}, serials); diff != "" {
		t.Errorf("revoked serials (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{1, 2}, numbers); diff != "" {
		t.Errorf("CRL numbers (-want +got):\n%s", diff)
	}

	for _, bad := range []string{"", "zz", "00", strings.Repeat("ab", 21)} {
		if err := p.Revoke(ctx, bad); !errors.Is(err, vault.ErrDenied) {
			t.Errorf("Revoke(%q) = %v, want an error wrapping vault.ErrDenied", bad, err)
		}
	}
}
