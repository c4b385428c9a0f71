package installers

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/reconciler-dev/reconciler/vault"
)

// Material is a bundle checked and put in the forms the files need.
type Material struct {
	CertPEM  []byte // leaf then chain, as the server presents it
	ChainPEM []byte // the CA file
	KeyPEM   []byte // PKCS #8, whatever form it came in
	Leaf     *x509.Certificate
	Key      crypto.Signer
	Chain    []*x509.Certificate
}

// ParseMaterial checks that the bundle holds a certificate, its chain and
// the matching key. Its errors never quote key material.
func ParseMaterial(b Bundle) (*Material, error) {
	certs, err := ParseCerts(b.CertPEM)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("bundle certificate: %w", orEmpty(err))
	}
	chain, err := ParseCerts(b.ChainPEM)
	if err != nil || len(chain) == 0 {
		return nil, fmt.Errorf("bundle chain: %w", orEmpty(err))
	}
	key, err := ParseKey(b.Key.Bytes())
	if err != nil {
		return nil, fmt.Errorf("bundle key: %w", err)
	}
	if !publicKeysEqual(key.Public(), certs[0].PublicKey) {
		return nil, errors.New("bundle key: it does not match the certificate")
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("bundle key: %w", err)
	}
	if _, err := TLSMinor(b.MinVersion); err != nil {
		return nil, err
	}
	m := &Material{
		ChainPEM: EncodeCerts(chain),
		KeyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		Leaf:     certs[0],
		Key:      key,
		Chain:    chain,
	}
	m.CertPEM = append(EncodeCerts(certs[:1]), m.ChainPEM...)
	return m, nil
}

func orEmpty(err error) error {
	if err == nil {
		return errors.New("no PEM certificate in it")
	}
	return err
}

// ParseCerts reads every certificate of a PEM bundle; a damaged block is
// an error, not skipped.
func ParseCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return certs, nil
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("a %q PEM block where certificates belong", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
}

// EncodeCerts writes certificates as PEM.
func EncodeCerts(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// ParseKey reads a PKCS #8, PKCS #1 or SEC 1 private key.
func ParseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM private key in it")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("a %q PEM block where the private key belongs", block.Type)
	}
	if err != nil {
		return nil, errors.New("the private key does not parse") // the parser's message is not needed and stays out
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, errors.New("unsupported private key type")
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	switch k := a.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k.(equaler).Equal(b)
	}
	return false
}

// TLSMinor is the bundle's minimum TLS version as a minor number of TLS
// 1.x; "" means 1.2.
func TLSMinor(v string) (int, error) {
	switch v {
	case "", "1.2":
		return 2, nil
	case "1.3":
		return 3, nil
	}
	return 0, fmt.Errorf("bundle minVersion %q: want 1.2 or 1.3", v)
}

// Version is a datastore version as major and minor numbers.
type Version struct{ Major, Minor int }

// ParseVersion reads "major.minor" (a patch level is ignored).
func ParseVersion(s string) (Version, error) {
	parts := strings.SplitN(strings.TrimPrefix(s, "v"), ".", 3)
	if s == "" || len(parts) < 2 {
		return Version{}, fmt.Errorf("datastore version %q: want major.minor, such as 6.0", s)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(strings.TrimRightFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	if err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("datastore version %q: want major.minor, such as 6.0", s)
	}
	return Version{major, minor}, nil
}

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) String() string { return strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor) }

// Checked is a bundle a server can load, with what identifies the
// certificate it will serve and the pool that verifies it.
type Checked struct {
	Bundle
	ServedFingerprint string // SHA-256 of the leaf, hex
	ServedSerial      string
	Roots             *x509.CertPool
}

// CheckBundle refuses, before any file is touched, a bundle a server could
// not load: a certificate that does not parse, a key that is not its key,
// a chain with no certificate, a fingerprint that is not the leaf's.
func CheckBundle(b Bundle) (*Checked, error) {
	leaf, err := vault.ParseLeaf(b.CertPEM)
	if err != nil {
		return nil, fmt.Errorf("check bundle: %w", err)
	}
	if _, err := tls.X509KeyPair(b.CertPEM, b.Key.Bytes()); err != nil {
		// crypto/tls never quotes the key in its errors.
		return nil, fmt.Errorf("check bundle: certificate serial %s: %w", vault.SerialString(leaf.SerialNumber), err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b.ChainPEM) {
		return nil, errors.New("check bundle: the CA chain holds no certificate")
	}
	c := &Checked{Bundle: b, ServedFingerprint: vault.Fingerprint(leaf.Raw), ServedSerial: vault.SerialString(leaf.SerialNumber), Roots: roots}
	if b.Fingerprint != "" && !strings.EqualFold(strings.ReplaceAll(b.Fingerprint, ":", ""), c.ServedFingerprint) {
		return nil, fmt.Errorf("check bundle: the certificate's fingerprint is %s, the bundle says %s", c.ServedFingerprint, b.Fingerprint)
	}
	return c, nil
}
