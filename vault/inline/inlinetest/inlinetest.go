// Package inlinetest makes throwaway PKIs for tests of the inline and href
// key providers: a root CA, an intermediate it signed, and server leaves
// the intermediate signs, laid out as the inline provider reads them.
//
// Like httptest.NewServer, its constructors panic rather than return an
// error: they fail only if the system's random source does, or if a test
// hands them a template x509 refuses, and either is a broken test.
package inlinetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CA is a two-level certificate authority: Root signs Intermediate, and
// Intermediate signs leaves.
type CA struct {
	Root         *x509.Certificate
	Intermediate *x509.Certificate

	rootKey, intermediateKey crypto.Signer
}

// NewCA returns a CA whose certificates are named after name ("<name> Root
// CA", "<name> Intermediate CA"), valid from an hour ago for ten years.
func NewCA(name string) *CA {
	now := time.Now()
	rootKey := NewKey()
	root := sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " Root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}, nil, rootKey.Public(), rootKey)
	interKey := NewKey()
	inter := sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: name + " Intermediate CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(5, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}, root, interKey.Public(), rootKey)
	return &CA{Root: root, Intermediate: inter, rootKey: rootKey, intermediateKey: interKey}
}

// RootPEM returns the root certificate alone: a ca.crt for leaves whose
// tls.crt carries the intermediate.
func (ca *CA) RootPEM() []byte { return EncodeCerts(ca.Root) }

// ChainPEM returns the intermediate, then the root: a ca.crt that carries
// the whole chain, root last.
func (ca *CA) ChainPEM() []byte { return EncodeCerts(ca.Intermediate, ca.Root) }

// Template returns a server certificate template for instance covering
// hosts (DNS names and IP addresses), valid from an hour ago for 90 days.
// Tests change it before Sign to make the certificate they need.
func Template(instance string, hosts ...string) *x509.Certificate {
	now := time.Now()
	t := &x509.Certificate{
		Subject:     pkix.Name{CommonName: instance},
		NotBefore:   now.Add(-time.Hour),
		NotAfter:    now.AddDate(0, 0, 90),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			t.IPAddresses = append(t.IPAddresses, ip)
		} else {
			t.DNSNames = append(t.DNSNames, h)
		}
	}
	return t
}

// Leaf is a server certificate the CA signed, with its private key.
type Leaf struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	CA   *CA
}

// Sign signs tmpl with the intermediate, giving it a fresh random serial.
// key is the leaf's key; nil means a fresh ECDSA P-256 key.
func (ca *CA) Sign(tmpl *x509.Certificate, key crypto.Signer) *Leaf {
	if key == nil {
		key = NewKey()
	}
	return &Leaf{Cert: sign(tmpl, ca.Intermediate, key.Public(), ca.intermediateKey), Key: key, CA: ca}
}

// CertPEM returns the leaf, then the intermediate: a tls.crt.
func (l *Leaf) CertPEM() []byte { return EncodeCerts(l.Cert, l.CA.Intermediate) }

// KeyPEM returns the leaf's private key, PEM PKCS #8: a tls.key.
func (l *Leaf) KeyPEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(l.Key)
	if err != nil {
		panic(fmt.Sprintf("inlinetest: marshal key: %v", err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Files returns the three files of the leaf's instance: tls.crt (leaf and
// intermediate), tls.key and ca.crt (the root).
func (l *Leaf) Files() Files {
	return Files{Cert: l.CertPEM(), Key: l.KeyPEM(), CA: l.CA.RootPEM()}
}

// Files are the contents of an instance's tls.crt, tls.key and ca.crt.
type Files struct {
	Cert, Key, CA []byte
}

// Write writes f into dir/instance, creating the directory, with the key
// readable by its owner only, as the inline provider demands.
func Write(dir, instance string, f Files) error {
	d := filepath.Join(dir, instance)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return err
	}
	for _, w := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{"tls.crt", f.Cert, 0o644}, {"tls.key", f.Key, 0o600}, {"ca.crt", f.CA, 0o644}} {
		p := filepath.Join(d, w.name)
		if err := os.WriteFile(p, w.data, w.mode); err != nil {
			return err
		}
		// WriteFile keeps the mode of a file that exists; tests rewrite.
		if err := os.Chmod(p, w.mode); err != nil {
			return err
		}
	}
	return nil
}

// NewKey returns a fresh ECDSA P-256 key.
func NewKey() crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(fmt.Sprintf("inlinetest: generate key: %v", err))
	}
	return k
}

// EncodeCerts returns certs as consecutive PEM blocks.
func EncodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("inlinetest: serial: %v", err))
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		panic(fmt.Sprintf("inlinetest: sign %s: %v", tmpl.Subject.CommonName, err))
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(fmt.Sprintf("inlinetest: parse %s: %v", tmpl.Subject.CommonName, err))
	}
	return c
}
