package local

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
)

// crlValidity is how long a CRL says it stays current; fetch a new one
// before then.
const crlValidity = 72 * time.Hour

// revocations is revocations.json: not secret, kept in clear so that it
// can be audited.
type revocations struct {
	// CRLNumber is the number of the last CRL made; every CRL gets the
	// next one.
	CRLNumber int64        `json:"crl_number"`
	Revoked   []revocation `json:"revoked"`
}

type revocation struct {
	Serial    string    `json:"serial"` // as vault.SerialString writes it
	RevokedAt time.Time `json:"revoked_at"`
}

// Revoke records serial (colon-separated hex, as Certificate.Serial holds
// it) as revoked; the next CRL lists it. Revoking a serial twice is not an
// error, and neither is revoking one this CA never issued: the provider
// keeps no list of what it issued, and a listed serial the CA never signed
// harms no one. A serial that is not hex is refused with an error wrapping
// vault.ErrDenied.
func (p *Provider) Revoke(ctx context.Context, serial string) error {
	n, err := parseSerial(serial)
	if err != nil {
		return fmt.Errorf("revoke certificate %q: %w", serial, err)
	}
	s := vault.SerialString(n)
	err = p.withLock(ctx, func() error {
		r, err := p.readRevocations()
		if err != nil {
			return err
		}
		for _, e := range r.Revoked {
			if e.Serial == s {
				return nil
			}
		}
		r.Revoked = append(r.Revoked, revocation{Serial: s, RevokedAt: time.Now().UTC().Truncate(time.Second)})
		if err := p.writeRevocations(r); err != nil {
			return err
		}
		p.log.Info("revoked certificate", "serial", s)
		return nil
	})
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", s, err)
	}
	return nil
}

// CRL returns a new DER certificate revocation list signed by the CA and
// listing every revoked serial. Each call makes a CRL with a number one
// above the last, valid for 72 hours.
func (p *Provider) CRL(ctx context.Context) ([]byte, error) {
	var der []byte
	err := p.withLock(ctx, func() error {
		r, err := p.readRevocations()
		if err != nil {
			return err
		}
		r.CRLNumber++
		now := time.Now()
		list := &x509.RevocationList{
			Number:     big.NewInt(r.CRLNumber),
			ThisUpdate: now.Add(-clockSkew),
			NextUpdate: now.Add(crlValidity),
		}
		for _, e := range r.Revoked {
			n, err := parseSerial(e.Serial)
			if err != nil {
				return fmt.Errorf("read %s: serial %q: %w", revocationsFile, e.Serial, ErrDamaged)
			}
			list.RevokedCertificateEntries = append(list.RevokedCertificateEntries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: e.RevokedAt})
		}
		der, err = x509.CreateRevocationList(rand.Reader, list, p.ca.cert, p.ca.key)
		if err != nil {
			return fmt.Errorf("sign CRL: %w", err)
		}
		return p.writeRevocations(r)
	})
	if err != nil {
		return nil, fmt.Errorf("make CRL: %w", err)
	}
	return der, nil
}

// readRevocations reads revocations.json; a missing file is an empty
// list. The caller holds the lock.
func (p *Provider) readRevocations() (*revocations, error) {
	data, err := os.ReadFile(p.path(revocationsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &revocations{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", revocationsFile, err)
	}
	var r revocations
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read %s in %s: %w: %w", revocationsFile, p.dir, err, ErrDamaged)
	}
	return &r, nil
}

func (p *Provider) writeRevocations(r *revocations) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", revocationsFile, err)
	}
	return writeFileAtomic(p.path(revocationsFile), append(data, '\n'))
}

// parseSerial reads a serial written as hex, with or without colons.
func parseSerial(s string) (*big.Int, error) {
	h := strings.ReplaceAll(s, ":", "")
	if len(h)%2 == 1 {
		h = "0" + h
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("not a hex serial number: %w", vault.ErrDenied)
	}
	if len(b) > 20 {
		return nil, fmt.Errorf("serial number longer than 20 bytes: %w", vault.ErrDenied)
	}
	n := new(big.Int).SetBytes(b)
	if n.Sign() == 0 {
		return nil, fmt.Errorf("serial number is zero: %w", vault.ErrDenied)
	}
	return n, nil
}
