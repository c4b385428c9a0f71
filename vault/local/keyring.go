package local

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/vault"
)

// keySize is the size of RPC keys and master key versions.
const keySize = 32

// wrappedPrefix starts every wrapped key, so a key wrapped by another
// provider is recognised as such rather than failing to decrypt.
const wrappedPrefix = "local:v"

// wrappedLen is the length of a wrapped key's ciphertext: nonce, key, tag.
const wrappedLen = 12 + keySize + 16

// keyring is the plaintext of keyring.enc: the master key versions, oldest
// first, version i+1 at index i.
type keyring struct {
	Versions []masterKey `json:"versions"`
}

type masterKey struct {
	Version int       `json:"version"`
	Key     []byte    `json:"key"`
	Created time.Time `json:"created"`
}

func newKeyring() (*keyring, error) {
	r := &keyring{}
	if err := r.add(); err != nil {
		return nil, err
	}
	return r, nil
}

// add appends the next master key version.
func (r *keyring) add() error {
	k := make([]byte, keySize)
	if _, err := rand.Read(k); err != nil {
		return fmt.Errorf("generate master key: %w", err)
	}
	r.Versions = append(r.Versions, masterKey{Version: len(r.Versions) + 1, Key: k, Created: time.Now().UTC().Truncate(time.Second)})
	return nil
}

func (r *keyring) latest() int { return len(r.Versions) }

// aead returns the cipher of master key version v, which must exist.
func (r *keyring) aead(v int) cipher.AEAD {
	block, err := aes.NewCipher(r.Versions[v-1].Key)
	if err != nil {
		panic(fmt.Sprintf("new AES cipher: %v", err)) // checked at load: 32 bytes
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		panic(fmt.Sprintf("new GCM: %v", err))
	}
	return aead
}

// readKeyring reads keyring.enc and returns it with the file's
// information from just before the read. The caller holds the lock, or
// accepts missing a rotation that lands meanwhile (the file information
// then differs on the next look, and the keyring is read again).
func (p *Provider) readKeyring() (*keyring, os.FileInfo, error) {
	fi, err := os.Stat(p.path(keyringFile))
	if err != nil {
		return nil, nil, fmt.Errorf("load keyring: %w", err)
	}
	pt, err := p.openSealed(keyringFile, purposeKeyring)
	if err != nil {
		return nil, nil, fmt.Errorf("load keyring: %w", err)
	}
	defer clear(pt)
	var r keyring
	if err := json.Unmarshal(pt, &r); err != nil {
		return nil, nil, fmt.Errorf("load keyring: decode %s: %w", keyringFile, ErrDamaged)
	}
	if len(r.Versions) == 0 {
		return nil, nil, fmt.Errorf("load keyring: %s holds no master key: %w", keyringFile, ErrDamaged)
	}
	for i, m := range r.Versions {
		if m.Version != i+1 || len(m.Key) != keySize {
			return nil, nil, fmt.Errorf("load keyring: %s: master key version %d is malformed: %w", keyringFile, i+1, ErrDamaged)
		}
	}
	return &r, fi, nil
}

// writeKeyring replaces keyring.enc with r and returns the new file's
// information. The caller holds the lock.
func (p *Provider) writeKeyring(r *keyring) (os.FileInfo, error) {
	pt, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("write keyring: %w", err)
	}
	defer clear(pt)
	if err := writeFileAtomic(p.path(keyringFile), seal(p.kek, purposeKeyring, pt)); err != nil {
		return nil, fmt.Errorf("write keyring: %w", err)
	}
	fi, err := os.Stat(p.path(keyringFile))
	if err != nil {
		return nil, fmt.Errorf("write keyring: %w", err)
	}
	return fi, nil
}

// remember makes r the keyring in use, unless the one in use is newer.
func (p *Provider) remember(r *keyring, fi os.FileInfo) {
	p.ringMu.Lock()
	defer p.ringMu.Unlock()
	if p.ring == nil || r.latest() >= p.ring.latest() {
		p.ring, p.ringFile = r, fi
	}
}

// currentKeyring returns the keyring, read again if keyring.enc changed
// since it was last read: another Provider sharing the directory rotated
// the master key. The look costs a stat.
func (p *Provider) currentKeyring() (*keyring, error) {
	p.ringMu.RLock()
	r, last := p.ring, p.ringFile
	p.ringMu.RUnlock()
	fi, err := os.Stat(p.path(keyringFile))
	if err != nil {
		return nil, fmt.Errorf("load keyring: %w", err)
	}
	// A rotation writes a new file (a new inode) that is larger (one more
	// version), so comparing both catches every rotation.
	if os.SameFile(last, fi) && fi.Size() == last.Size() && fi.ModTime().Equal(last.ModTime()) {
		return r, nil
	}
	fresh, fi, err := p.readKeyring()
	if err != nil {
		return nil, err
	}
	p.remember(fresh, fi)
	p.ringMu.RLock()
	defer p.ringMu.RUnlock()
	return p.ring, nil
}

// NewKey returns a new random 32-byte RPC key for instance, wrapped under
// the newest master key version and bound to instance.
func (p *Provider) NewKey(ctx context.Context, instance string) (*vault.DataKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("new key for %q: %w", instance, err)
	}
	if instance == "" {
		return nil, fmt.Errorf("new key: the instance name is empty: %w", vault.ErrDenied)
	}
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("new key for %q: %w", instance, err)
	}
	r, err := p.currentKeyring()
	if err != nil {
		return nil, fmt.Errorf("new key for %q: %w", instance, err)
	}
	v := r.latest()
	return &vault.DataKey{Plaintext: vault.Secret(key), Wrapped: wrap(r, v, instance, key), MasterVersion: v}, nil
}

// Unwrap returns the RPC key in wrapped, which must have been wrapped for
// instance by a provider sharing this state directory, under a master key
// version no older than the minimum decryption version. Every refusal
// wraps vault.ErrDenied.
func (p *Provider) Unwrap(ctx context.Context, instance string, wrapped []byte) (vault.Secret, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("unwrap key for %q: %w", instance, err)
	}
	key, _, err := p.unwrap(instance, wrapped)
	if err != nil {
		return nil, fmt.Errorf("unwrap key for %q: %w", instance, err)
	}
	return vault.Secret(key), nil
}

// Rewrap unwraps wrapped for instance and wraps the key again under the
// newest master key version, for instance only. Use it on every stored key
// after RotateMaster.
func (p *Provider) Rewrap(ctx context.Context, instance string, wrapped []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rewrap key for %q: %w", instance, err)
	}
	key, r, err := p.unwrap(instance, wrapped)
	if err != nil {
		return nil, fmt.Errorf("rewrap key for %q: %w", instance, err)
	}
	defer clear(key)
	return wrap(r, r.latest(), instance, key), nil
}

// RotateMaster adds master key version N+1 to keyring.enc; NewKey and
// Rewrap use it from then on, in every Provider sharing the directory.
func (p *Provider) RotateMaster(ctx context.Context) error {
	err := p.withLock(ctx, func() error {
		r, _, err := p.readKeyring() // another Provider may have rotated it
		if err != nil {
			return err
		}
		if err := r.add(); err != nil {
			return err
		}
		fi, err := p.writeKeyring(r)
		if err != nil {
			return err
		}
		p.remember(r, fi)
		p.log.Info("rotated master key", "version", r.latest())
		return nil
	})
	if err != nil {
		return fmt.Errorf("rotate master key: %w", err)
	}
	return nil
}

// unwrap decrypts wrapped for instance and returns the key and the
// current keyring.
func (p *Provider) unwrap(instance string, wrapped []byte) ([]byte, *keyring, error) {
	v, ct, err := parseWrapped(wrapped)
	if err != nil {
		return nil, nil, err
	}
	if v < p.minDecrypt {
		return nil, nil, fmt.Errorf("the key is wrapped under master key version %d, below the minimum decryption version %d (rewrap stored keys before raising it): %w", v, p.minDecrypt, vault.ErrDenied)
	}
	r, err := p.currentKeyring()
	if err != nil {
		return nil, nil, err
	}
	if v > r.latest() {
		return nil, nil, fmt.Errorf("master key version %d does not exist (newest is %d): %w", v, r.latest(), vault.ErrDenied)
	}
	key, err := r.aead(v).Open(nil, nil, ct, wrapAD(instance, v))
	if err != nil {
		return nil, nil, fmt.Errorf("the wrapped key does not authenticate: it was wrapped for another instance, by another state directory, or tampered with: %w", vault.ErrDenied)
	}
	return key, r, nil
}

// wrap encrypts key for instance under master key version v of r.
func wrap(r *keyring, v int, instance string, key []byte) []byte {
	ct := r.aead(v).Seal(nil, nil, key, wrapAD(instance, v))
	out := make([]byte, 0, len(wrappedPrefix)+4+base64.RawURLEncoding.EncodedLen(len(ct)))
	out = append(out, wrappedPrefix...)
	out = strconv.AppendInt(out, int64(v), 10)
	out = append(out, ':')
	return base64.RawURLEncoding.AppendEncode(out, ct)
}

// wrapAD binds a wrapped key to its instance and master key version.
func wrapAD(instance string, v int) []byte {
	return []byte("reconciler rpc key\x00" + instance + "\x00v" + strconv.Itoa(v))
}

// maxVersion bounds the version a wrapped key may name.
const maxVersion = 1 << 30

// parseWrapped splits "local:v<N>:<base64url(nonce|ciphertext)>" into the
// master key version and the ciphertext, refusing anything else; its
// errors wrap vault.ErrDenied and never quote the input.
func parseWrapped(wrapped []byte) (int, []byte, error) {
	rest, ok := bytes.CutPrefix(wrapped, []byte(wrappedPrefix))
	if !ok {
		return 0, nil, fmt.Errorf("not a key wrapped by the local provider (want %s<N>:...): %w", wrappedPrefix, vault.ErrDenied)
	}
	ver, enc, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return 0, nil, fmt.Errorf("malformed wrapped key: no version separator: %w", vault.ErrDenied)
	}
	v, err := strconv.Atoi(string(ver))
	if err != nil || v < 1 || v > maxVersion || strings.HasPrefix(string(ver), "0") || strings.HasPrefix(string(ver), "+") {
		return 0, nil, fmt.Errorf("malformed wrapped key: bad master key version: %w", vault.ErrDenied)
	}
	if want := base64.RawURLEncoding.EncodedLen(wrappedLen); len(enc) != want {
		return 0, nil, fmt.Errorf("malformed wrapped key: %d characters of ciphertext, want %d: %w", len(enc), want, vault.ErrDenied)
	}
	ct, err := base64.RawURLEncoding.Strict().DecodeString(string(enc))
	if err != nil || len(ct) != wrappedLen {
		return 0, nil, fmt.Errorf("malformed wrapped key: bad base64: %w", vault.ErrDenied)
	}
	return v, ct, nil
}
