package manticore

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// material is a bundle checked and put in the forms the files need.
type material struct {
	certPEM  []byte // leaf then chain, as the server presents it
	chainPEM []byte // the CA file
	keyPEM   []byte // PKCS #8, whatever form it came in
	leaf     *x509.Certificate
	key      crypto.Signer
	chain    []*x509.Certificate
}

// parseBundle checks that the bundle holds a certificate, its chain and
// the matching key. Its errors never quote key material.
func parseBundle(b installers.Bundle) (*material, error) {
	certs, err := parseCerts(b.CertPEM)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("bundle certificate: %w", orEmpty(err))
	}
	chain, err := parseCerts(b.ChainPEM)
	if err != nil || len(chain) == 0 {
		return nil, fmt.Errorf("bundle chain: %w", orEmpty(err))
	}
	key, err := parseKey(b.Key.Bytes())
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
	if _, err := minVersion(b.MinVersion); err != nil {
		return nil, err
	}
	m := &material{
		chainPEM: encodeCerts(chain),
		keyPEM:   pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		leaf:     certs[0],
		key:      key,
		chain:    chain,
	}
	m.certPEM = append(encodeCerts(certs[:1]), m.chainPEM...)
	return m, nil
}

func orEmpty(err error) error {
	if err == nil {
		return errors.New("no PEM certificate in it")
	}
	return err
}

func parseCerts(data []byte) ([]*x509.Certificate, error) {
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

func encodeCerts(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return buf.Bytes()
}

// parseKey reads a PKCS #8, PKCS #1 or SEC 1 private key.
func parseKey(data []byte) (crypto.Signer, error) {
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

// minVersion is the bundle's minimum TLS version as a minor number of TLS
// 1.x; "" means 1.2.
func minVersion(v string) (int, error) {
	switch v {
	case "", "1.2":
		return 2, nil
	case "1.3":
		return 3, nil
	}
	return 0, fmt.Errorf("bundle minVersion %q: want 1.2 or 1.3", v)
}
