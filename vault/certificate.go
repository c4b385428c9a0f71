package vault

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// NewCertificate parses a PEM certificate (the first block of certPEM is
// the leaf) and fills the Certificate's serial, fingerprint and validity
// from it. Every implementation builds its result with it, so they all
// describe certificates the same way.
func NewCertificate(certPEM, chainPEM []byte, key Secret) (*Certificate, error) {
	leaf, err := ParseLeaf(certPEM)
	if err != nil {
		return nil, err
	}
	return &Certificate{
		CertPEM:     certPEM,
		ChainPEM:    chainPEM,
		Key:         key,
		Serial:      SerialString(leaf.SerialNumber),
		Fingerprint: Fingerprint(leaf.Raw),
		NotBefore:   leaf.NotBefore,
		NotAfter:    leaf.NotAfter,
	}, nil
}

// ParseLeaf returns the first certificate of a PEM bundle.
func ParseLeaf(certPEM []byte) (*x509.Certificate, error) {
	for rest := certPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("parse certificate: no PEM certificate found")
		}
		if block.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse certificate: %w", err)
			}
			return c, nil
		}
	}
}

// ParseChain returns every certificate of a PEM bundle, in order.
func ParseChain(chainPEM []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := chainPEM; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return out, nil
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate chain: %w", err)
		}
		out = append(out, c)
	}
}

// Fingerprint returns the hex SHA-256 of a DER certificate.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// SerialString writes a serial number as colon-separated hex pairs, the
// way Vault names serials in its API and openssl prints them.
func SerialString(n *big.Int) string {
	h := n.Text(16)
	if len(h)%2 == 1 {
		h = "0" + h
	}
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}
