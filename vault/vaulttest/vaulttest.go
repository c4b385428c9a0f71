// Package vaulttest is the contract test suite of the key providers: every
// vault.Issuer and vault.KeyWrapper implementation runs the same cases, so
// the reconciler can swap one for another without surprises.
package vaulttest

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
)

// IssuerOptions describe what an issuer under test can do.
type IssuerOptions struct {
	// Request is what to ask for; zero means a P-256 certificate for
	// instance "orders-db" with a DNS and an IP SAN, for 2h.
	Request vault.CertificateRequest
	// Static issuers (inline, href) hand out the certificate they were
	// given: repeated issues return the same serial, and the requested TTL
	// is not honoured.
	Static bool
	// NoRSA skips the RSA case, for issuers whose certificates are fixed.
	NoRSA bool
	// CanRevoke says Revoke works; otherwise it must wrap
	// errors.ErrUnsupported.
	CanRevoke bool
	// CRL, when set, returns the issuer's current CRL (DER or PEM): a
	// revoked serial must appear in it.
	CRL func(ctx context.Context) ([]byte, error)
}

// DefaultRequest is the request issuers are tested with.
func DefaultRequest() vault.CertificateRequest {
	return vault.CertificateRequest{
		Instance: "orders-db",
		Hosts:    []string{"orders-db.db.internal", "10.0.4.17"},
		TTL:      2 * time.Hour,
	}
}

// TestIssuer runs the Issuer contract.
func TestIssuer(t *testing.T, iss vault.Issuer, opts IssuerOptions) {
	ctx := context.Background()
	req := opts.Request
	if req.Instance == "" {
		req = DefaultRequest()
	}

	t.Run("issues a certificate the CA chain verifies for every host", func(t *testing.T) {
		c, err := iss.Issue(ctx, req)
		if err != nil {
			t.Fatalf("Issue: %v", err)
		}
		leaf := checkCertificate(t, c, req)
		roots, err := iss.CAChain(ctx)
		if err != nil {
			t.Fatalf("CAChain: %v", err)
		}
		verify(t, leaf, c.ChainPEM, roots, req.Hosts)
		if !opts.Static {
			if got := leaf.NotAfter.Sub(leaf.NotBefore); got > req.TTL+5*time.Minute || got < req.TTL-5*time.Minute {
				t.Errorf("lifetime %s, want about %s", got, req.TTL)
			}
		}
		if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok && req.KeyType != vault.KeyTypeRSA {
			t.Errorf("key type %T, want ECDSA by default", leaf.PublicKey)
		} else if ok && leaf.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
			t.Errorf("curve %s, want P-256", leaf.PublicKey.(*ecdsa.PublicKey).Curve.Params().Name)
		}
	})

	if !opts.NoRSA {
		t.Run("issues RSA keys on request", func(t *testing.T) {
			r := req
			r.KeyType = vault.KeyTypeRSA
			c, err := iss.Issue(ctx, r)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			leaf := checkCertificate(t, c, r)
			if _, ok := leaf.PublicKey.(*rsa.PublicKey); !ok {
				t.Errorf("key type %T, want RSA", leaf.PublicKey)
			}
		})
	}

	t.Run("repeated issues", func(t *testing.T) {
		a, err := iss.Issue(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := iss.Issue(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if same := a.Serial == b.Serial; same != opts.Static {
			t.Errorf("two issues gave serials %s and %s; static issuer: %v", a.Serial, b.Serial, opts.Static)
		}
	})

	t.Run("revoke", func(t *testing.T) {
		c, err := iss.Issue(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		err = iss.Revoke(ctx, c.Serial)
		if !opts.CanRevoke {
			if !errors.Is(err, errors.ErrUnsupported) {
				t.Fatalf("Revoke = %v, want an error wrapping errors.ErrUnsupported", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Revoke: %v", err)
		}
		if err := iss.Revoke(ctx, c.Serial); err != nil {
			t.Errorf("a second Revoke of the same serial failed: %v", err)
		}
		if opts.CRL == nil {
			return
		}
		crlBytes, err := opts.CRL(ctx)
		if err != nil {
			t.Fatalf("CRL: %v", err)
		}
		if block, _ := pem.Decode(crlBytes); block != nil {
			crlBytes = block.Bytes
		}
		crl, err := x509.ParseRevocationList(crlBytes)
		if err != nil {
			t.Fatalf("parse CRL: %v", err)
		}
		if !slices.ContainsFunc(crl.RevokedCertificateEntries, func(e x509.RevocationListEntry) bool {
			return vault.SerialString(e.SerialNumber) == c.Serial
		}) {
			t.Errorf("serial %s is not in the CRL", c.Serial)
		}
	})

	t.Run("the private key never shows in formatted output", func(t *testing.T) {
		c, err := iss.Issue(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		NoSecretIn(t, c.Key, []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%x", c.Key), fmt.Sprintf("%s", c.Key), logged(c), marshalled(t, c)})
	})

	t.Run("a cancelled context stops the request", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := iss.Issue(cctx, req); err == nil {
			t.Error("Issue with a cancelled context succeeded")
		}
	})
}

func checkCertificate(t *testing.T, c *vault.Certificate, req vault.CertificateRequest) *x509.Certificate {
	t.Helper()
	leaf, err := vault.ParseLeaf(c.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Serial, vault.SerialString(leaf.SerialNumber); got != want {
		t.Errorf("Serial %q, certificate says %q", got, want)
	}
	if got, want := c.Fingerprint, vault.Fingerprint(leaf.Raw); got != want {
		t.Errorf("Fingerprint %q, certificate's is %q", got, want)
	}
	if !c.NotBefore.Equal(leaf.NotBefore) || !c.NotAfter.Equal(leaf.NotAfter) {
		t.Errorf("validity %s..%s, certificate says %s..%s", c.NotBefore, c.NotAfter, leaf.NotBefore, leaf.NotAfter)
	}
	if leaf.Subject.CommonName != req.Instance {
		t.Errorf("common name %q, want %q", leaf.Subject.CommonName, req.Instance)
	}
	var dns, ips []string
	for _, h := range req.Hosts {
		if net.ParseIP(h) != nil {
			ips = append(ips, net.ParseIP(h).String())
		} else {
			dns = append(dns, h)
		}
	}
	var gotIPs []string
	for _, ip := range leaf.IPAddresses {
		gotIPs = append(gotIPs, ip.String())
	}
	for _, h := range dns {
		if !slices.Contains(leaf.DNSNames, h) {
			t.Errorf("DNS SANs %v lack %s", leaf.DNSNames, h)
		}
	}
	for _, ip := range ips {
		if !slices.Contains(gotIPs, ip) {
			t.Errorf("IP SANs %v lack %s", gotIPs, ip)
		}
	}
	checkKeyMatches(t, c.Key, leaf)
	return leaf
}

// checkKeyMatches parses the private key and checks it belongs to leaf.
func checkKeyMatches(t *testing.T, keyPEM vault.Secret, leaf *x509.Certificate) {
	t.Helper()
	block, _ := pem.Decode(keyPEM.Bytes())
	if block == nil {
		t.Fatal("the private key is not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		t.Fatalf("unexpected private key block %q", block.Type)
	}
	if err != nil {
		t.Fatalf("parse private key: %v", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		t.Fatalf("private key %T cannot sign", key)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		t.Error("the private key does not match the certificate")
	}
}

func verify(t *testing.T, leaf *x509.Certificate, chainPEM, rootsPEM []byte, hosts []string) {
	t.Helper()
	chain, err := vault.ParseChain(chainPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := vault.ParseChain(rootsPEM)
	if err != nil || len(roots) == 0 {
		t.Fatalf("CAChain returned no certificate (%v)", err)
	}
	rootPool, inter := x509.NewCertPool(), x509.NewCertPool()
	rootPool.AddCert(roots[len(roots)-1])
	for _, c := range append(chain, roots[:len(roots)-1]...) {
		inter.AddCert(c)
	}
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: rootPool, Intermediates: inter, DNSName: h,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("certificate does not verify for %s against the CA chain: %v", h, err)
		}
	}
}

// TestKeyWrapper runs the KeyWrapper contract, and the MasterRotator one
// when kw implements it.
func TestKeyWrapper(t *testing.T, kw vault.KeyWrapper) {
	ctx := context.Background()
	t.Run("a new key unwraps for its instance only", func(t *testing.T) {
		k, err := kw.NewKey(ctx, "orders-db")
		if err != nil {
			t.Fatalf("NewKey: %v", err)
		}
		if len(k.Plaintext) != 32 {
			t.Fatalf("key is %d bytes, want 32", len(k.Plaintext))
		}
		if len(k.Wrapped) == 0 || bytes.Contains(k.Wrapped, k.Plaintext) {
			t.Fatal("the wrapped form is empty or holds the key in clear")
		}
		got, err := kw.Unwrap(ctx, "orders-db", k.Wrapped)
		if err != nil {
			t.Fatalf("Unwrap: %v", err)
		}
		if !bytes.Equal(got, k.Plaintext) {
			t.Error("Unwrap returned another key")
		}
		if _, err := kw.Unwrap(ctx, "payments-db", k.Wrapped); err == nil {
			t.Error("a key wrapped for orders-db unwrapped for payments-db")
		}
		NoSecretIn(t, k.Plaintext, []string{fmt.Sprint(k), fmt.Sprintf("%+v", k), fmt.Sprintf("%#v", k), fmt.Sprintf("%x", k.Plaintext), logged(k), marshalled(t, k)})
	})

	t.Run("every key is new", func(t *testing.T) {
		a, err := kw.NewKey(ctx, "orders-db")
		if err != nil {
			t.Fatal(err)
		}
		b, err := kw.NewKey(ctx, "orders-db")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a.Plaintext, b.Plaintext) {
			t.Error("two NewKey calls returned the same key")
		}
	})

	t.Run("a tampered wrapped key is refused", func(t *testing.T) {
		k, err := kw.NewKey(ctx, "orders-db")
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range [][]byte{tamper(k.Wrapped), k.Wrapped[:len(k.Wrapped)/2], []byte("garbage"), nil} {
			if _, err := kw.Unwrap(ctx, "orders-db", bad); err == nil {
				t.Errorf("Unwrap accepted %q", bad)
			}
		}
	})

	rot, ok := kw.(vault.MasterRotator)
	if !ok {
		return
	}
	t.Run("rotating the master key keeps old keys and rewraps them", func(t *testing.T) {
		old, err := kw.NewKey(ctx, "orders-db")
		if err != nil {
			t.Fatal(err)
		}
		if err := rot.RotateMaster(ctx); err != nil {
			t.Fatalf("RotateMaster: %v", err)
		}
		got, err := kw.Unwrap(ctx, "orders-db", old.Wrapped)
		if err != nil || !bytes.Equal(got, old.Plaintext) {
			t.Fatalf("a key wrapped before the rotation no longer unwraps: %v", err)
		}
		rewrapped, err := kw.Rewrap(ctx, "orders-db", old.Wrapped)
		if err != nil {
			t.Fatalf("Rewrap: %v", err)
		}
		if bytes.Equal(rewrapped, old.Wrapped) {
			t.Error("Rewrap returned the same wrapped key")
		}
		got, err = kw.Unwrap(ctx, "orders-db", rewrapped)
		if err != nil || !bytes.Equal(got, old.Plaintext) {
			t.Errorf("the rewrapped key does not unwrap to the same key: %v", err)
		}
		fresh, err := kw.NewKey(ctx, "orders-db")
		if err != nil {
			t.Fatal(err)
		}
		if fresh.MasterVersion <= old.MasterVersion {
			t.Errorf("master version %d after rotation, was %d", fresh.MasterVersion, old.MasterVersion)
		}
		if _, err := kw.Rewrap(ctx, "payments-db", old.Wrapped); err == nil {
			t.Error("Rewrap for another instance succeeded")
		}
	})
}

func tamper(b []byte) []byte {
	out := bytes.Clone(b)
	out[len(out)/2] ^= 0x01
	if bytes.Equal(out, b) || len(out) == 0 {
		out = append(out, 'x')
	}
	return out
}

// NoSecretIn fails if any of outputs holds the secret, in clear, hex or
// base64-free text. Call it with what logs, errors, metrics and API
// responses produced.
func NoSecretIn(t *testing.T, secret vault.Secret, outputs []string) {
	t.Helper()
	s := secret.Bytes()
	needles := []string{string(s), fmt.Sprintf("%x", []byte(s))}
	if len(s) > 16 {
		needles = append(needles, string(s[:16]))
	}
	for _, out := range outputs {
		for _, n := range needles {
			if n != "" && strings.Contains(out, n) {
				t.Errorf("secret material leaked into output: %.120q", out)
			}
		}
	}
}

func logged(v any) string {
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Info("value", "v", v)
	slog.New(slog.NewTextHandler(&b, nil)).Info("value", "v", v)
	return b.String()
}

func marshalled(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}
