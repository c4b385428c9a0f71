package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Key types of issued certificates.
const (
	KeyTypeEC  = "ec"  // ECDSA P-256, the default
	KeyTypeRSA = "rsa" // RSA 2048
)

// CertificateRequest asks for an instance's certificate.
type CertificateRequest struct {
	// Instance is the instance's name: the certificate's common name and,
	// for drivers that read files per instance, the directory name.
	Instance string
	// Hosts are the DNS names and IP addresses the certificate must cover;
	// each becomes a SAN of the right kind.
	Hosts []string
	// TTL is the lifetime asked for; an issuer may cap it and says so in
	// the certificate's NotAfter.
	TTL time.Duration
	// KeyType is KeyTypeEC (when empty) or KeyTypeRSA.
	KeyType string
}

// Certificate is an issued certificate and its private key.
type Certificate struct {
	CertPEM  []byte // the leaf certificate
	ChainPEM []byte // the issuing CA chain, leaf excluded, up to the root
	Key      Secret // the private key, PEM (PKCS #8)

	Serial      string // colon-separated hex, as Vault and openssl print it
	Fingerprint string // SHA-256 of the DER certificate, hex
	NotBefore   time.Time
	NotAfter    time.Time
}

// Issuer gives instances their TLS certificates. Implementations must be
// safe for concurrent use.
//
// Issue returns a certificate for the request signed by the issuer's CA;
// the chain it returns verifies it. Revoke revokes a certificate by its
// Serial; revoking an unknown or already revoked serial is not an error, so
// a retried revoke succeeds. An issuer that cannot revoke (certificates it
// did not issue) returns an error wrapping errors.ErrUnsupported. CAChain
// returns the PEM chain clients should trust, root last.
type Issuer interface {
	Issue(ctx context.Context, req CertificateRequest) (*Certificate, error)
	Revoke(ctx context.Context, serial string) error
	CAChain(ctx context.Context) ([]byte, error)
}

// DataKey is a new per-instance RPC key.
type DataKey struct {
	// Plaintext is the 32-byte key, for the instance's agent and nothing
	// else: never stored, never logged.
	Plaintext Secret
	// Wrapped is the key encrypted under the provider's master key and
	// bound to the instance: safe to store.
	Wrapped []byte
	// MasterVersion is the master key version that wrapped it.
	MasterVersion int
}

// KeyWrapper makes per-instance RPC keys and keeps them wrapped.
// Implementations must be safe for concurrent use.
//
// NewKey makes a fresh random key for instance, each call a new one (so a
// per-instance key rotation is a NewKey). Unwrap returns the key inside
// wrapped, which must have been wrapped for the same instance: a key
// wrapped for another instance, or tampered with, is an error. Rewrap
// re-encrypts wrapped under the newest master key version without the
// plaintext leaving the provider where the provider allows (Vault
// transit's rewrap); use it after RotateMaster.
type KeyWrapper interface {
	NewKey(ctx context.Context, instance string) (*DataKey, error)
	Unwrap(ctx context.Context, instance string, wrapped []byte) (Secret, error)
	Rewrap(ctx context.Context, instance string, wrapped []byte) ([]byte, error)
}

// MasterRotator is implemented by key wrappers whose master key rotates.
//
// RotateMaster makes a new master key version the one new keys and Rewrap
// use; keys wrapped under older versions still unwrap until the provider's
// minimum decryption version passes them.
type MasterRotator interface {
	RotateMaster(ctx context.Context) error
}

// ErrDenied marks a request the provider refuses for good (a permission,
// a role, a path that does not exist, a request that breaks the role's
// rules): retrying it cannot help, the configuration must change.
var ErrDenied = errors.New("denied by the key provider")

// ErrNoSSL is returned by an issuer that issues nothing (the "none"
// provider): the instance must keep SSL disabled.
var ErrNoSSL = errors.New("this key provider issues no certificates")

// Secret holds key material. Its String, GoString, LogValue and
// MarshalJSON hide the bytes, so it cannot leak through fmt, slog or JSON
// by accident; Bytes is the only way in.
type Secret []byte

// Bytes returns the secret's bytes. Callers must not log them.
func (s Secret) Bytes() []byte { return s }

// String hides the secret.
func (s Secret) String() string {
	if len(s) == 0 {
		return "[empty]"
	}
	return "[redacted]"
}

// GoString hides the secret from %#v.
func (s Secret) GoString() string { return s.String() }

// LogValue hides the secret from slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON hides the secret from encoding/json.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// Format hides the secret from every fmt verb, %x and %s included.
func (s Secret) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }
