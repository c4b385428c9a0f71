package rpc

import (
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/reconciler-dev/reconciler/vault"
)

// TokenSize is the size of a bootstrap token in bytes.
const TokenSize = 32

// Domain separation strings: a proof, a KDF output and a delivery of this
// package can never be mistaken for anything else keyed by the same
// token.
const (
	proofContext    = "reconciler rpc key request v1\x00"
	deliveryContext = "reconciler rpc key delivery v1\x00"
)

var magicDelivery = [magicSize]byte{'R', 'C', 'K'}

// deliveryFixed is magic, format, key version, ephemeral public key,
// token hash and instance name length.
const deliveryFixed = magicSize + 1 + 4 + 32 + sha256.Size + 1

// NewBootstrapToken returns a fresh one-time bootstrap token from
// crypto/rand, for `reconciler agent bootstrap NAME` to hand to a new
// host out of band.
func NewBootstrapToken() (vault.Secret, error) {
	t := make([]byte, TokenSize)
	if _, err := rand.Read(t); err != nil {
		return nil, fmt.Errorf("new bootstrap token: %w", err)
	}
	return vault.Secret(t), nil
}

// KeyRequest is a keyless agent's request for its key: a fresh X25519
// public key and a proof that the requester holds the instance's
// bootstrap token, bound to that public key. Nothing in it is secret, and
// the token itself never crosses the wire.
type KeyRequest struct {
	Instance  string `json:"instance"`
	PublicKey []byte `json:"publicKey"` // X25519, 32 bytes
	Proof     []byte `json:"proof"`     // HMAC-SHA256(token, context || instance || 0 || public key)
}

// NewKeyRequest makes a key pair for instance and the request that
// carries its public half. The agent keeps the private key in memory
// only, until OpenKey.
func NewKeyRequest(instance string, token vault.Secret) (*KeyRequest, *ecdh.PrivateKey, error) {
	if !validInstance(instance) {
		return nil, nil, fmt.Errorf("new key request for instance %q: not a DNS-1123 label", instance)
	}
	if len(token.Bytes()) != TokenSize {
		return nil, nil, fmt.Errorf("new key request for instance %q: token of %d bytes, want %d", instance, len(token.Bytes()), TokenSize)
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("new key request for instance %q: generate key pair: %w", instance, err)
	}
	pub := priv.PublicKey().Bytes()
	return &KeyRequest{Instance: instance, PublicKey: pub, Proof: proof(token, instance, pub)}, priv, nil
}

// Verify checks that r is for instance and was made by a holder of token,
// and returns the public key to seal the instance's key to. Its errors
// wrap ErrWrongInstance, ErrMalformed or ErrTampered.
func (r *KeyRequest) Verify(instance string, token vault.Secret) (*ecdh.PublicKey, error) {
	if r.Instance != instance {
		return nil, fmt.Errorf("verify key request for instance %q: %w", instance, ErrWrongInstance)
	}
	pub, err := ecdh.X25519().NewPublicKey(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("verify key request for instance %q: public key: %w", instance, ErrMalformed)
	}
	if !hmac.Equal(r.Proof, proof(token, instance, r.PublicKey)) {
		return nil, fmt.Errorf("verify key request for instance %q: bootstrap token proof: %w", instance, ErrTampered)
	}
	return pub, nil
}

func proof(token vault.Secret, instance string, pub []byte) []byte {
	m := hmac.New(sha256.New, token.Bytes())
	m.Write([]byte(proofContext))
	m.Write([]byte(instance))
	m.Write([]byte{0})
	m.Write(pub)
	return m.Sum(nil)
}

// SealKeyFor seals key, of the given version, to the agent's public key
// pub, for instance. A fresh ephemeral X25519 key pair, the agent's
// public key and the bootstrap token feed HKDF-SHA256; its output keys
// AES-256-GCM over the key, with the format, key version,
// ephemeral public key, SHA-256 of the token and instance name as
// associated data. Only the holder of pub's private key can open it, and
// only a holder of the token can have made it, so neither an eavesdropper
// nor an active attacker without the token learns or plants a key.
func SealKeyFor(pub *ecdh.PublicKey, instance string, token vault.Secret, version uint32, key vault.Secret) ([]byte, error) {
	switch {
	case !validInstance(instance):
		return nil, fmt.Errorf("seal key for instance %q: not a DNS-1123 label", instance)
	case version == 0 || len(key.Bytes()) != KeySize:
		return nil, fmt.Errorf("seal key version %d for instance %q: %w", version, instance, ErrBadKey)
	case len(token.Bytes()) != TokenSize:
		return nil, fmt.Errorf("seal key for instance %q: token of %d bytes, want %d", instance, len(token.Bytes()), TokenSize)
	case pub == nil || pub.Curve() != ecdh.X25519():
		return nil, fmt.Errorf("seal key for instance %q: not an X25519 public key", instance)
	}
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal key for instance %q: generate ephemeral key: %w", instance, err)
	}
	b := make([]byte, 0, deliveryFixed+len(instance)+nonceSize+KeySize+tagSize)
	b = append(b, magicDelivery[:]...)
	b = append(b, FormatVersion)
	b = binary.BigEndian.AppendUint32(b, version)
	b = append(b, eph.PublicKey().Bytes()...)
	th := sha256.Sum256(token.Bytes())
	b = append(b, th[:]...)
	b = append(b, byte(len(instance)))
	b = append(b, instance...)
	nonce := b[len(b) : len(b)+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal key for instance %q: read nonce: %w", instance, err)
	}
	b = b[:len(b)+nonceSize]
	aead, err := deliveryAEAD(eph, pub, eph.PublicKey().Bytes(), pub.Bytes(), instance, token)
	if err != nil {
		return nil, fmt.Errorf("seal key for instance %q: %w", instance, err)
	}
	return aead.Seal(b, nonce, key.Bytes(), b), nil
}

// OpenKey opens a key delivery made by SealKeyFor with priv's public
// half, for instance and token, and returns the key's version and the
// key. Its errors wrap ErrMalformed, ErrWrongInstance or ErrTampered (a
// delivery for another token or key pair, or altered in any byte).
func OpenKey(priv *ecdh.PrivateKey, instance string, token vault.Secret, data []byte) (uint32, vault.Secret, error) {
	fail := func(what string, err error) (uint32, vault.Secret, error) {
		return 0, nil, fmt.Errorf("open key delivery for instance %q: %s: %w", instance, what, err)
	}
	if priv == nil || priv.Curve() != ecdh.X25519() {
		return 0, nil, fmt.Errorf("open key delivery for instance %q: not an X25519 private key", instance)
	}
	if len(data) < deliveryFixed || [magicSize]byte(data[:magicSize]) != magicDelivery || data[3] != FormatVersion {
		return fail("header", ErrMalformed)
	}
	version := binary.BigEndian.Uint32(data[4:8])
	ephPub, th := data[8:40], data[40:72]
	n := int(data[72])
	end := deliveryFixed + n
	if version == 0 || len(data) != end+nonceSize+KeySize+tagSize {
		return fail("length", ErrMalformed)
	}
	if string(data[deliveryFixed:end]) != instance {
		return fail("instance name", ErrWrongInstance)
	}
	want := sha256.Sum256(token.Bytes())
	if !hmac.Equal(th, want[:]) {
		return fail("made for another bootstrap token", ErrTampered)
	}
	eph, err := ecdh.X25519().NewPublicKey(ephPub)
	if err != nil {
		return fail("ephemeral key", ErrMalformed)
	}
	aead, err := deliveryAEAD(priv, eph, ephPub, priv.PublicKey().Bytes(), instance, token)
	if err != nil {
		// A low-order ephemeral key makes X25519 fail: a forgery.
		return fail("key agreement", ErrTampered)
	}
	ad := data[:end+nonceSize]
	key, err := aead.Open(nil, data[end:end+nonceSize], data[end+nonceSize:], ad)
	if err != nil {
		return fail("authentication", ErrTampered)
	}
	return version, vault.Secret(key), nil
}

// deliveryAEAD derives the key-encryption key: HKDF-SHA256 over the
// X25519 shared secret and the token, salted with the ephemeral and the
// agent's public keys (in that order on both sides), the context and the
// instance name as info.
func deliveryAEAD(mine *ecdh.PrivateKey, theirs *ecdh.PublicKey, ephPub, agentPub []byte, instance string, token vault.Secret) (cipher.AEAD, error) {
	shared, err := mine.ECDH(theirs)
	if err != nil {
		return nil, fmt.Errorf("key agreement: %w", err)
	}
	secret := append(shared, token.Bytes()...)
	salt := append(append(make([]byte, 0, 64), ephPub...), agentPub...)
	kek, err := hkdf.Key(sha256.New, secret, salt, deliveryContext+instance, KeySize)
	clear(secret)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	defer clear(kek)
	return newAEAD(kek)
}
