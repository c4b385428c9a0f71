package rpc

import (
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/reconciler-dev/reconciler/vault"
)

// KeySize is the size of an instance key in bytes.
const KeySize = 32

// MaxSealsPerKey is how many messages one side seals under one key
// version before Seal refuses with ErrKeyExhausted. With random 96-bit
// GCM nonces the chance of a repeat stays below 2^-32 up to 2^32
// messages per key (NIST SP 800-38D); both sides share the key, so each
// gets half. At a message a second that is 68 years: rotation comes long
// before.
const MaxSealsPerKey = 1 << 31

type keyEntry struct {
	aead  cipher.AEAD
	seals atomic.Uint64
}

// Keyring holds one instance's keys on one side: the current version,
// which seals, and during a rotation one other version, which only opens.
// doc.go describes the rotation protocol its methods model. A Keyring is
// safe for concurrent use; it never prints its keys (its String, Format
// and LogValue show the instance and versions only).
type Keyring struct {
	instance string

	mu      sync.Mutex           // serialises Add, Promote and Retire
	current uint32               // 0: no key
	keys    map[uint32]*keyEntry // at most two
	retired uint32               // highest version retired; lower ones never come back

	// state is an immutable copy of current and keys, replaced under mu
	// after every change, so that Seal and Open read the keyring with one
	// atomic load and take no lock.
	state atomic.Pointer[keyState]
}

// keyState is a snapshot of a Keyring. The entries are shared with the
// map, so the seal counts are too.
type keyState struct {
	current  uint32
	sealer   *keyEntry // the current version's entry, nil when empty
	versions []uint32  // held versions, increasing
	entries  []*keyEntry
}

var emptyKeyState = &keyState{}

// NewKeyring returns an empty keyring for instance: with no key, a
// session seals and accepts plaintext only if its policy allows it.
func NewKeyring(instance string) *Keyring {
	k := &Keyring{instance: instance, keys: make(map[uint32]*keyEntry, 2)}
	k.state.Store(emptyKeyState)
	return k
}

// publish replaces the snapshot after a change; k.mu must be held.
func (k *Keyring) publish() {
	st := &keyState{current: k.current, sealer: k.keys[k.current]}
	for v := range k.keys {
		st.versions = append(st.versions, v)
	}
	slices.Sort(st.versions)
	for _, v := range st.versions {
		st.entries = append(st.entries, k.keys[v])
	}
	k.state.Store(st)
}

// load returns the current snapshot.
func (k *Keyring) load() *keyState {
	if st := k.state.Load(); st != nil {
		return st
	}
	return emptyKeyState
}

// Instance returns the instance the keyring belongs to.
func (k *Keyring) Instance() string { return k.instance }

// Add makes key, of the given version, acceptable for opening. The first
// key added to an empty keyring also becomes current; later ones wait for
// Promote. The keyring keeps its own copy, so the caller may wipe key.
//
// It refuses a key that is not KeySize bytes or is all zeros, a version
// that is 0, already held, or not above the highest retired version (a
// retired key never comes back), and a third version (ErrKeyringFull).
func (k *Keyring) Add(version uint32, key vault.Secret) error {
	b := key.Bytes()
	switch {
	case len(b) != KeySize:
		return fmt.Errorf("add key version %d for instance %q: %d bytes, want %d: %w", version, k.instance, len(b), KeySize, ErrBadKey)
	case subtle.ConstantTimeCompare(b, make([]byte, KeySize)) == 1:
		return fmt.Errorf("add key version %d for instance %q: all zeros: %w", version, k.instance, ErrBadKey)
	case version == 0:
		return fmt.Errorf("add key for instance %q: version 0 is reserved for plaintext: %w", k.instance, ErrBadKey)
	}
	aead, err := newAEAD(b)
	if err != nil {
		return fmt.Errorf("add key version %d for instance %q: %w", version, k.instance, ErrBadKey)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case k.keys[version] != nil:
		return fmt.Errorf("add key version %d for instance %q: version already held: %w", version, k.instance, ErrBadKey)
	case version <= k.retired:
		return fmt.Errorf("add key version %d for instance %q: not above retired version %d: %w", version, k.instance, k.retired, ErrBadKey)
	case len(k.keys) >= 2:
		return fmt.Errorf("add key version %d for instance %q: %w", version, k.instance, ErrKeyringFull)
	}
	k.keys[version] = &keyEntry{aead: aead}
	if k.current == 0 {
		k.current = version
	}
	k.publish()
	return nil
}

// Promote makes a held version the one that seals. Both versions still
// open until the other is retired.
func (k *Keyring) Promote(version uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys[version] == nil {
		return fmt.Errorf("promote key version %d for instance %q: %w", version, k.instance, ErrUnknownKeyVersion)
	}
	k.current = version
	k.publish()
	return nil
}

// Retire stops accepting a version: messages under it are refused with
// ErrUnknownKeyVersion from then on, and it can never be added again.
// Retiring a version not held is not an error, so a retried retire
// succeeds; retiring the current version is (ErrRetireCurrent).
func (k *Keyring) Retire(version uint32) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if version == k.current && version != 0 {
		return fmt.Errorf("retire key version %d for instance %q: %w", version, k.instance, ErrRetireCurrent)
	}
	delete(k.keys, version)
	k.retired = max(k.retired, version)
	k.publish()
	return nil
}

// Current returns the version that seals, or 0 when the keyring is empty.
func (k *Keyring) Current() uint32 { return k.load().current }

// Versions returns the versions that open, in increasing order.
func (k *Keyring) Versions() []uint32 {
	v := k.load().versions
	return append(make([]uint32, 0, len(v)), v...)
}

// HasKey reports whether the keyring holds any key; a keyring that does
// refuses plaintext whatever the policy says.
func (k *Keyring) HasKey() bool { return len(k.load().versions) > 0 }

// sealer returns the current version and its AEAD (nil if none), and
// counts one more seal under it: false once MaxSealsPerKey is reached.
func (k *Keyring) sealer() (uint32, cipher.AEAD, bool) {
	st := k.load()
	if st.sealer == nil {
		return 0, nil, true
	}
	return st.current, st.sealer.aead, st.sealer.seals.Add(1) <= MaxSealsPerKey
}

// opener returns the AEAD of version (nil if not held) and whether the
// keyring holds any key.
func (k *Keyring) opener(version uint32) (cipher.AEAD, bool) {
	st := k.load()
	for i, v := range st.versions {
		if v == version {
			return st.entries[i].aead, true
		}
	}
	return nil, len(st.versions) > 0
}

// String shows the instance and versions, never key bytes.
func (k *Keyring) String() string {
	return fmt.Sprintf("rpc.Keyring{instance: %q, current: %d, versions: %v}", k.instance, k.Current(), k.Versions())
}

// Format keeps every fmt verb, %#v and %x included, on String: the AEADs
// inside hold the expanded keys.
func (k *Keyring) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue shows the instance and versions to slog.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("instance", k.instance),
		slog.Any("current", k.Current()),
		slog.Any("versions", k.Versions()),
	)
}
