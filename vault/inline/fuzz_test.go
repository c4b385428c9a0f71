package inline

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/inline/inlinetest"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

// seedKeys are tls.key files in every encoding the parser reads, and some
// it must refuse.
func seedKeys(f *testing.F) [][]byte {
	f.Helper()
	ec := inlinetest.NewKey().(*ecdsa.PrivateKey)
	sec1, err := x509.MarshalECPrivateKey(ec)
	if err != nil {
		f.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(ec)
	if err != nil {
		f.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	enc := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	full := enc("PRIVATE KEY", pkcs8)
	return [][]byte{
		full,
		enc("EC PRIVATE KEY", sec1),
		append(enc("EC PARAMETERS", []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}), enc("EC PRIVATE KEY", sec1)...),
		enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)),
		enc("RSA PRIVATE KEY", pkcs8), // mislabelled
		enc("ENCRYPTED PRIVATE KEY", []byte{0x30, 0}),
		append(full, full...),
		full[:len(full)/2],
		[]byte("-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n"),
		nil,
	}
}

func FuzzParseKey(f *testing.F) {
	for _, k := range seedKeys(f) {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		blocks, _ := pemBlocks(data)
		key, err := parseKey("tls.key", vault.Secret(bytes.Clone(data)))
		if err != nil {
			if key != nil {
				t.Error("parseKey returned a key and an error")
			}
			checkRefusal(t, err, blocks)
			return
		}
		if _, err := x509.MarshalPKCS8PrivateKey(key); err != nil {
			t.Errorf("parseKey accepted a key PKCS #8 cannot hold: %v", err)
		}
	})
}

func FuzzParseCertificates(f *testing.F) {
	ca := inlinetest.NewCA("fuzz")
	l := ca.Sign(inlinetest.Template("orders-db", "orders-db.db.internal"), nil)
	for _, seed := range [][]byte{
		l.CertPEM(),
		ca.ChainPEM(),
		append([]byte("subject=CN=orders-db\n"), l.CertPEM()...),
		l.CertPEM()[:300],
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("garbage")}),
		l.KeyPEM(),
		nil,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseCertificates("tls.crt", data, "fix it")
		if err != nil {
			var fe *FileError
			if !errors.As(err, &fe) || !errors.Is(err, vault.ErrDenied) {
				t.Errorf("error %v is not a *FileError wrapping vault.ErrDenied", err)
			}
			return
		}
		if len(certs) == 0 {
			t.Error("parseCertificates returned no certificate and no error")
		}
		if _, err := parseCAChain("ca.crt", data); err == nil && !selfSigned(certs[len(certs)-1]) {
			t.Error("parseCAChain accepted a chain that does not end with a self-signed root")
		}
	})
}

func FuzzValidate(f *testing.F) {
	ca := inlinetest.NewCA("fuzz")
	req := vaulttest.DefaultRequest()
	l := ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil)
	good := l.Files()
	f.Add(good.Cert, good.Key, good.CA)
	f.Add(good.Cert, ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil).KeyPEM(), good.CA)
	f.Add(inlinetest.EncodeCerts(l.Cert), good.Key, ca.ChainPEM())
	f.Add(good.Cert, good.Key, inlinetest.EncodeCerts(ca.Root, ca.Intermediate))
	f.Add(good.Key, good.Cert, good.CA)
	for _, k := range seedKeys(f) {
		f.Add(good.Cert, k, good.CA)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, certPEM, keyPEM, caPEM []byte) {
		blocks, _ := pemBlocks(keyPEM)
		b := Bundle{Cert: certPEM, Key: bytes.Clone(keyPEM), CA: caPEM, CertName: "tls.crt", KeyName: "tls.key", CAName: "ca.crt"}
		c, err := Validate(req, b, now, time.Hour)
		if err != nil {
			checkRefusal(t, err, blocks)
			return
		}
		leaf, err := vault.ParseLeaf(c.CertPEM)
		if err != nil {
			t.Fatalf("Validate accepted a certificate it cannot return: %v", err)
		}
		for _, h := range req.Hosts {
			if err := leaf.VerifyHostname(h); err != nil {
				t.Errorf("Validate accepted a certificate that does not cover %s", h)
			}
		}
	})
}

// checkRefusal checks that err is a *FileError wrapping vault.ErrDenied
// and holds none of the key file's PEM block contents.
func checkRefusal(t *testing.T, err error, keyBlocks []*pem.Block) {
	t.Helper()
	var fe *FileError
	if !errors.As(err, &fe) || !errors.Is(err, vault.ErrDenied) {
		t.Errorf("error %v is not a *FileError wrapping vault.ErrDenied", err)
	}
	msg := err.Error()
	for _, b := range keyBlocks {
		if len(b.Bytes) < 12 {
			continue
		}
		if bytes.Contains([]byte(msg), b.Bytes) || bytes.Contains([]byte(msg), []byte(base64.StdEncoding.EncodeToString(b.Bytes)[:16])) {
			t.Errorf("error %q holds the key file's contents", msg)
		}
	}
}
