package local

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
)

const (
	caCommonName = "reconciler local CA"
	caValidity   = 10 * 365 * 24 * time.Hour
	// clockSkew backdates NotBefore so a peer whose clock runs a little
	// behind accepts a certificate issued just now.
	clockSkew = time.Minute
)

// authority is the loaded CA.
type authority struct {
	cert        *x509.Certificate
	certPEM     []byte
	key         *ecdsa.PrivateKey
	fingerprint string
}

// sealedCA is the plaintext of ca-key.enc. It holds the certificate as
// well as the key, so ca.pem can always be rewritten from it and a
// replaced ca.pem is noticed.
type sealedCA struct {
	Certificate []byte `json:"certificate"` // DER
	Key         []byte `json:"key"`         // PKCS #8 DER
}

// createCA makes the self-signed root and writes ca-key.enc, then ca.pem.
// The caller holds the lock.
func (p *Provider) createCA() (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	defer clear(keyDER)
	pt, err := json.Marshal(sealedCA{Certificate: der, Key: keyDER})
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	defer clear(pt)
	if err := writeFileAtomic(p.path(caKeyFile), seal(p.kek, purposeCAKey, pt)); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	ca, err := newAuthority(der, key)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	if err := writeFileAtomic(p.path(caCertFile), ca.certPEM); err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	return ca, nil
}

// loadCA reads ca-key.enc, and checks ca.pem against it (rewriting it if
// it is missing). The caller holds the lock.
func (p *Provider) loadCA() (*authority, error) {
	pt, err := p.openSealed(caKeyFile, purposeCAKey)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w", err)
	}
	defer clear(pt)
	var s sealedCA
	if err := json.Unmarshal(pt, &s); err != nil {
		return nil, fmt.Errorf("load CA: decode %s: %w", caKeyFile, ErrDamaged)
	}
	defer clear(s.Key)
	k, err := x509.ParsePKCS8PrivateKey(s.Key)
	if err != nil {
		return nil, fmt.Errorf("load CA: parse the key in %s: %w", caKeyFile, ErrDamaged)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("load CA: the key in %s is a %T, want ECDSA: %w", caKeyFile, k, ErrDamaged)
	}
	ca, err := newAuthority(s.Certificate, key)
	if err != nil {
		return nil, fmt.Errorf("load CA: %w: %w", err, ErrDamaged)
	}
	onDisk, err := os.ReadFile(p.path(caCertFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := writeFileAtomic(p.path(caCertFile), ca.certPEM); err != nil {
			return nil, fmt.Errorf("load CA: %w", err)
		}
		p.log.Warn("rewrote the missing CA certificate", "file", p.path(caCertFile))
	case err != nil:
		return nil, fmt.Errorf("load CA: %w", err)
	case !bytes.Equal(onDisk, ca.certPEM):
		return nil, fmt.Errorf("load CA: %s in %s is not the certificate sealed in %s; restore it (or delete it to have it rewritten): %w", caCertFile, p.dir, caKeyFile, ErrDamaged)
	}
	return ca, nil
}

func newAuthority(der []byte, key *ecdsa.PrivateKey) (*authority, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("the CA key does not match the CA certificate")
	}
	return &authority{
		cert:        cert,
		certPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		key:         key,
		fingerprint: vault.Fingerprint(der),
	}, nil
}

// Issue issues a certificate for req signed by the local CA: common name
// req.Instance, a DNS or IP SAN per host, valid from a minute ago (clock
// skew) for req.TTL capped at the maximum TTL and at the CA's own expiry,
// for server and client authentication. The key is P-256, or RSA 2048 for
// vault.KeyTypeRSA. A malformed request is refused with an error wrapping
// vault.ErrDenied.
func (p *Provider) Issue(ctx context.Context, req vault.CertificateRequest) (*vault.Certificate, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", req.Instance, err)
	}
	tmpl, err := p.leafTemplate(req)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", req.Instance, err)
	}
	key, err := generateLeafKey(req.KeyType)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", req.Instance, err)
	}
	if err := ctx.Err(); err != nil { // an RSA key takes a while
		return nil, fmt.Errorf("issue certificate for %q: %w", req.Instance, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca.cert, key.Public(), p.ca.key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", req.Instance, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", req.Instance, err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	clear(keyDER)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	c, err := vault.NewCertificate(certPEM, bytes.Clone(p.ca.certPEM), vault.Secret(keyPEM))
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %q: %w", req.Instance, err)
	}
	p.log.Debug("issued certificate", "instance", req.Instance, "serial", c.Serial, "not_after", c.NotAfter)
	return c, nil
}

// CAChain returns the local CA's certificate, PEM: the root clients trust.
func (p *Provider) CAChain(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read CA chain: %w", err)
	}
	return bytes.Clone(p.ca.certPEM), nil
}

// leafTemplate checks req and builds the certificate template; its errors
// wrap vault.ErrDenied, since no retry of the same request can succeed.
func (p *Provider) leafTemplate(req vault.CertificateRequest) (*x509.Certificate, error) {
	switch {
	case strings.TrimSpace(req.Instance) == "":
		return nil, fmt.Errorf("the instance name is empty: %w", vault.ErrDenied)
	case len(req.Hosts) == 0:
		return nil, fmt.Errorf("no hosts given: %w", vault.ErrDenied)
	case req.TTL <= 0:
		return nil, fmt.Errorf("TTL %s is not positive: %w", req.TTL, vault.ErrDenied)
	case req.KeyType != "" && req.KeyType != vault.KeyTypeEC && req.KeyType != vault.KeyTypeRSA:
		return nil, fmt.Errorf("unknown key type %q (want %q or %q): %w", req.KeyType, vault.KeyTypeEC, vault.KeyTypeRSA, vault.ErrDenied)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(min(req.TTL, p.maxTTL))
	if notAfter.After(p.ca.cert.NotAfter) {
		notAfter = p.ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.Instance},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if req.KeyType == vault.KeyTypeRSA {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	seen := map[string]bool{}
	for _, h := range req.Hosts {
		if h == "" || strings.ContainsFunc(h, isSpaceOrControl) {
			return nil, fmt.Errorf("host %q is not a DNS name or IP address: %w", h, vault.ErrDenied)
		}
		if seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	return tmpl, nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

func generateLeafKey(keyType string) (crypto.Signer, error) {
	if keyType == vault.KeyTypeRSA {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		return k, nil
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate ECDSA key: %w", err)
	}
	return k, nil
}

// serialLimit bounds serials to 128 bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// randomSerial returns a random positive serial of at most 128 bits.
func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}
