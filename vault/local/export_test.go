package local

import "crypto/x509"

// CAKeyForms returns the forms the CA's private key could leak in: its
// PKCS #8 DER and its raw scalar.
func CAKeyForms(p *Provider) [][]byte {
	der, err := x509.MarshalPKCS8PrivateKey(p.ca.key)
	if err != nil {
		panic(err)
	}
	d, err := p.ca.key.Bytes()
	if err != nil {
		panic(err)
	}
	return [][]byte{der, d}
}

// MasterKeys returns every master key version's bytes.
func MasterKeys(p *Provider) [][]byte {
	p.ringMu.RLock()
	defer p.ringMu.RUnlock()
	var out [][]byte
	for _, m := range p.ring.Versions {
		out = append(out, m.Key)
	}
	return out
}

// KEKBytes returns the KEK's bytes.
func KEKBytes(k KEK) []byte { return k.key[:] }
