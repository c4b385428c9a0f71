package inline

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
)

// The files of an instance, in its directory (inline) or at its URLs
// (href).
const (
	CertFile = "tls.crt" // the leaf certificate, then any intermediates
	KeyFile  = "tls.key" // the leaf's private key
	CAFile   = "ca.crt"  // the CA chain that issued the leaf, root last
)

// MaxFileSize caps each file. A certificate chain is a few KiB, so a
// larger file is the wrong file, and the cap keeps it out of memory.
const MaxFileSize = 64 << 10

// FileError says what is wrong with one of an instance's files and how to
// fix it. It wraps vault.ErrDenied, since only a change to the file can
// help, and the underlying error when there is one.
type FileError struct {
	// File names the file the way its owner knows it: "orders-db/tls.crt",
	// or with the URL it came from.
	File string
	// Problem says what is wrong, as a phrase that follows File.
	Problem string
	// Fix says what to do about it.
	Fix string
	// Err is the underlying error, or nil.
	Err error
}

// Error reads "<file> <problem>; <fix>".
func (e *FileError) Error() string { return e.File + " " + e.Problem + "; " + e.Fix }

// Unwrap returns vault.ErrDenied and the underlying error.
func (e *FileError) Unwrap() []error {
	if e.Err == nil {
		return []error{vault.ErrDenied}
	}
	return []error{vault.ErrDenied, e.Err}
}

// CheckInstance refuses an instance name that cannot be a single directory
// or URL path segment: empty, ".", or holding "/", "\" or "..". Names come
// from fleet files, so a name must not reach outside the instance's own
// directory.
func CheckInstance(name string) error {
	if name == "" || strings.ContainsAny(name, `/\`+"\x00") || strings.Contains(name, "..") || !filepath.IsLocal(name) || name == "." {
		return fmt.Errorf(`%w: instance name %q cannot name a directory: it must be non-empty and hold no "/", "\" or ".."; rename the instance`, vault.ErrDenied, name)
	}
	return nil
}

// Bundle is an instance's certificate material as read, not yet trusted.
type Bundle struct {
	Cert []byte       // tls.crt: PEM, the leaf first, then any intermediates
	Key  vault.Secret // tls.key: PEM, PKCS #8, PKCS #1 or SEC 1
	CA   []byte       // ca.crt: PEM, the CA chain, root last

	// CertName, KeyName and CAName name the three files in errors.
	CertName, KeyName, CAName string
}

// Validate checks that b can serve req at time now and returns it as a
// vault.Certificate: CertPEM the leaf, ChainPEM the verified chain above
// it up to the root, Key the private key re-encoded as PKCS #8.
//
// It refuses, with a *FileError, material that does not parse; a key that
// does not match the certificate; a ca.crt whose last certificate is not a
// self-signed root; a certificate the chain does not verify for TLS
// servers; a certificate that is not yet valid, has expired, or expires
// within minRemaining of now; and a certificate that does not cover every
// one of req.Hosts (DNS names, wildcards included, and IP addresses).
//
// The request's TTL and KeyType are not checked: the certificate is the
// one the owner's CA issued. No error holds any of the key's bytes.
func Validate(req vault.CertificateRequest, b Bundle, now time.Time, minRemaining time.Duration) (*vault.Certificate, error) {
	certs, err := parseCertificates(b.CertName, b.Cert, "put the instance's certificate there, PEM, the leaf first, then any intermediates")
	if err != nil {
		return nil, err
	}
	leaf := certs[0]
	key, err := parseKey(b.KeyName, b.Key)
	if err != nil {
		return nil, err
	}
	ca, err := parseCAChain(b.CAName, b.CA)
	if err != nil {
		return nil, err
	}
	root := ca[len(ca)-1]

	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		return nil, &FileError{File: b.KeyName, Problem: "does not match the certificate in " + b.CertName,
			Fix: "put the private key that certificate was issued for there, or reissue the certificate for this key"}
	}

	switch {
	case now.Before(leaf.NotBefore):
		return nil, &FileError{File: b.CertName, Problem: "is not valid until " + stamp(leaf.NotBefore),
			Fix: "reissue it valid from now, or check this host's clock"}
	case now.After(leaf.NotAfter):
		return nil, &FileError{File: b.CertName, Problem: "expired at " + stamp(leaf.NotAfter),
			Fix: "renew it at your CA and replace the file"}
	case leaf.NotAfter.Sub(now) < minRemaining:
		return nil, &FileError{File: b.CertName, Problem: fmt.Sprintf("expires at %s, in less than the %s of validity it must have left", stamp(leaf.NotAfter), minRemaining),
			Fix: "renew it at your CA and replace the file"}
	}

	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	for _, c := range slices.Concat(certs[1:], ca[:len(ca)-1]) {
		intermediates.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, chainError(b, leaf, root, err)
	}

	var missing []string
	for _, h := range req.Hosts {
		if leaf.VerifyHostname(h) != nil {
			missing = append(missing, h)
		}
	}
	if len(missing) > 0 {
		problem, fix := "does not cover host ", "reissue it with that SAN"
		if len(missing) > 1 {
			problem, fix = "does not cover hosts ", "reissue it with those SANs"
		}
		return nil, &FileError{File: b.CertName, Problem: problem + strings.Join(missing, ", ") + " (" + sans(leaf) + ")", Fix: fix}
	}

	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, &FileError{File: b.KeyName, Problem: "holds a key that cannot be written as PKCS #8", Fix: "use an ECDSA, RSA or Ed25519 key", Err: err}
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	clear(der)
	return vault.NewCertificate(encodeCerts(leaf), encodeCerts(chains[0][1:]...), vault.Secret(keyPEM))
}

// ValidateCAChain checks a fleet CA bundle, named name in errors: PEM
// certificates, root last. It returns the certificates re-encoded, any
// text around the PEM blocks dropped.
func ValidateCAChain(name string, data []byte) ([]byte, error) {
	certs, err := parseCAChain(name, data)
	if err != nil {
		return nil, err
	}
	return encodeCerts(certs...), nil
}

func chainError(b Bundle, leaf, root *x509.Certificate, err error) error {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return &FileError{File: b.CertName, Err: err,
			Problem: fmt.Sprintf("is issued by %q, which does not chain to the root %q in %s", leaf.Issuer.String(), root.Subject.String(), b.CAName),
			Fix:     fmt.Sprintf("reissue it from that root's CA, or put the chain of the CA that issued it in %s", b.CAName)}
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return &FileError{File: b.CertName, Err: err,
			Problem: "is not valid for TLS servers: its extended key usage (or an intermediate's) lacks serverAuth",
			Fix:     "reissue it with extended key usage serverAuth"}
	default:
		return &FileError{File: b.CertName, Err: err,
			Problem: fmt.Sprintf("does not verify against %s (%v)", b.CAName, err),
			Fix:     fmt.Sprintf("check the chain: %s holds the leaf then its intermediates, %s the CA chain, root last", b.CertName, b.CAName)}
	}
}

// parseCertificates parses a PEM file that must hold certificates; fix is
// what to do when it holds none.
func parseCertificates(name string, data []byte, fix string) ([]*x509.Certificate, error) {
	certs, err := vault.ParseChain(data)
	if err != nil {
		return nil, &FileError{File: name, Err: err, Problem: fmt.Sprintf("holds a certificate that does not parse (%v)", err),
			Fix: "replace it with the PEM certificates your CA issued"}
	}
	if _, undecoded := pemBlocks(data); undecoded {
		return nil, &FileError{File: name, Problem: "holds a PEM block that does not decode: it is truncated or corrupted",
			Fix: "replace it with a complete copy"}
	}
	if len(certs) == 0 {
		return nil, &FileError{File: name, Problem: "holds no PEM certificate", Fix: fix}
	}
	return certs, nil
}

// parseCAChain parses a CA chain, which must end with a self-signed root.
func parseCAChain(name string, data []byte) ([]*x509.Certificate, error) {
	certs, err := parseCertificates(name, data, "put the CA chain that issued the certificate there, PEM, root last")
	if err != nil {
		return nil, err
	}
	last := certs[len(certs)-1]
	if selfSigned(last) {
		return certs, nil
	}
	for _, c := range certs {
		if selfSigned(c) {
			return nil, &FileError{File: name, Problem: fmt.Sprintf("lists the root %q before %q", c.Subject.String(), last.Subject.String()),
				Fix: "put the root last, after the intermediates"}
		}
	}
	return nil, &FileError{File: name, Problem: fmt.Sprintf("ends with %q, which is not a self-signed root CA", last.Subject.String()),
		Fix: "append the root CA certificate"}
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawSubject, c.RawIssuer) && c.CheckSignatureFrom(c) == nil
}

// parseKey parses the one private key of a PEM file. Its errors name the
// PEM block types they saw and never any of the key's bytes.
func parseKey(name string, data vault.Secret) (crypto.Signer, error) {
	const fix = "put the certificate's private key there, PEM: PKCS #8, PKCS #1 or SEC 1, unencrypted"
	blocks, undecoded := pemBlocks(data.Bytes())
	if undecoded {
		return nil, &FileError{File: name, Problem: "holds a PEM block that does not decode: it is truncated or corrupted", Fix: fix}
	}
	var keys []*pem.Block
	var others []string
	for _, b := range blocks {
		switch {
		case b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED"):
			return nil, &FileError{File: name, Problem: "holds an encrypted private key, and the reconciler has no passphrase",
				Fix: "store it decrypted (openssl pkey -in tls.key -out tls.key.new), readable by its owner only"}
		case b.Type == "PRIVATE KEY" || b.Type == "RSA PRIVATE KEY" || b.Type == "EC PRIVATE KEY":
			keys = append(keys, b)
		case b.Type == "EC PARAMETERS":
			// openssl ecparam -genkey writes the curve's name before the key.
		default:
			if q := strconv.Quote(b.Type); !slices.Contains(others, q) {
				others = append(others, q)
			}
		}
	}
	switch {
	case len(keys) == 0 && len(others) > 0:
		return nil, &FileError{File: name, Problem: "holds no private key, only " + strings.Join(others, ", ") + " blocks", Fix: fix}
	case len(keys) == 0:
		return nil, &FileError{File: name, Problem: "holds no PEM private key", Fix: fix}
	case len(keys) > 1:
		return nil, &FileError{File: name, Problem: fmt.Sprintf("holds %d private keys", len(keys)), Fix: "keep only the certificate's"}
	}
	var key any
	var err error
	var format string
	switch b := keys[0]; b.Type {
	case "PRIVATE KEY":
		format = "PKCS #8"
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		format = "PKCS #1"
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		format = "SEC 1"
		key, err = x509.ParseECPrivateKey(b.Bytes)
	}
	clear(keys[0].Bytes)
	if err != nil {
		// The parse error stays out of the message: asn1's read like a
		// struct dump. Like all of x509's, it names structures, never
		// contents, so it can be unwrapped safely.
		return nil, &FileError{File: name, Err: err, Problem: fmt.Sprintf("holds a %q block that does not parse as %s", keys[0].Type, format), Fix: fix}
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, &FileError{File: name, Problem: fmt.Sprintf("holds a %T, which cannot sign", key), Fix: "use an ECDSA, RSA or Ed25519 key"}
	}
	return signer, nil
}

// pemBlocks returns the PEM blocks of data, and whether a block that
// starts like PEM failed to decode. pem.Decode skips such a block
// silently, which would turn a truncated chain into a shorter one.
func pemBlocks(data []byte) (blocks []*pem.Block, undecoded bool) {
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	// Base64 and PEM headers hold no "-----BEGIN", so each one is a block.
	return blocks, bytes.Count(data, []byte("-----BEGIN")) != len(blocks)
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// sans lists a certificate's DNS and IP SANs for an error message.
func sans(c *x509.Certificate) string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "it has no DNS or IP SANs"
	}
	return "SANs: " + strings.Join(names, ", ")
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
