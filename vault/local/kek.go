package local

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KEKSize is the length of a key-encryption key in bytes.
const KEKSize = 32

// DefaultKEKEnv is the environment variable KEKFromEnv reads when given no
// name.
const DefaultKEKEnv = "RECONCILER_KEK"

// createKEKHint tells a user without a KEK how to make one. There is no
// default KEK: Trove shipped default keys, and every deployment that kept
// them had its secrets readable by anyone with the source.
const createKEKHint = "create one with: head -c 32 /dev/urandom | base64 > kek; chmod 600 kek"

// KEK is the key-encryption key the local provider seals its state under:
// the CA's private key and every master key version that wraps RPC keys.
// The zero KEK is no key; New refuses it.
//
// A KEK never shows its bytes: String, GoString, LogValue and every fmt
// verb print "[redacted]".
type KEK struct {
	key *[KEKSize]byte
}

// GenerateKEK returns a new random KEK.
func GenerateKEK() (KEK, error) {
	var k [KEKSize]byte
	if _, err := rand.Read(k[:]); err != nil {
		return KEK{}, fmt.Errorf("generate KEK: %w", err)
	}
	return KEK{key: &k}, nil
}

// LoadKEK reads a KEK from file: 32 bytes written as base64 or hex,
// surrounding whitespace ignored. The file must not be accessible by group
// or others; LoadKEK refuses it otherwise rather than use a key others may
// have read.
func LoadKEK(file string) (KEK, error) {
	if file == "" {
		return KEK{}, fmt.Errorf("load KEK: no KEK file given; %s", createKEKHint)
	}
	fi, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return KEK{}, fmt.Errorf("load KEK: %s does not exist; %s: %w", file, createKEKHint, err)
	}
	if err != nil {
		return KEK{}, fmt.Errorf("load KEK: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return KEK{}, fmt.Errorf("load KEK: %s is not a regular file", file)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return KEK{}, fmt.Errorf("load KEK: %s is accessible by group or others (mode %04o); restrict it with: chmod 600 %s", file, perm, file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return KEK{}, fmt.Errorf("load KEK: %w", err)
	}
	defer clear(data)
	k, err := parseKEK(data)
	if err != nil {
		return KEK{}, fmt.Errorf("load KEK from %s: %w", file, err)
	}
	return k, nil
}

// KEKFromEnv reads a KEK from the environment variable name
// (DefaultKEKEnv when name is empty), in the encodings LoadKEK accepts.
func KEKFromEnv(name string) (KEK, error) {
	if name == "" {
		name = DefaultKEKEnv
	}
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return KEK{}, fmt.Errorf("load KEK: environment variable %s is not set; %s and export %s=$(cat kek)", name, createKEKHint, name)
	}
	k, err := parseKEK([]byte(v))
	if err != nil {
		return KEK{}, fmt.Errorf("load KEK from environment variable %s: %w", name, err)
	}
	return k, nil
}

// WriteKEKFile writes k to file as base64, readable by its owner only, and
// syncs the file and its directory, so that the KEK is on disk before any
// state is sealed under it. It refuses to replace an existing file: the
// state sealed under the KEK it holds would be lost with it.
func WriteKEKFile(file string, k KEK) error {
	if k.key == nil {
		return fmt.Errorf("write KEK: %w", errNoKEK)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write KEK: %w (an existing KEK file is never replaced)", err)
	}
	enc := []byte(base64.StdEncoding.EncodeToString(k.key[:]) + "\n")
	defer clear(enc)
	if _, err := f.Write(enc); err != nil {
		f.Close()
		return fmt.Errorf("write KEK: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write KEK: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write KEK: %w", err)
	}
	if err := syncDir(filepath.Dir(file)); err != nil {
		return fmt.Errorf("write KEK: %w", err)
	}
	return nil
}

// errNoKEK is the zero KEK given to New.
var errNoKEK = fmt.Errorf("no KEK given; %s", createKEKHint)

// parseKEK decodes 32 bytes written as hex or base64. Its errors never
// quote the input.
func parseKEK(data []byte) (KEK, error) {
	s := bytes.TrimSpace(data)
	if len(s) == 0 {
		return KEK{}, fmt.Errorf("the KEK is empty; %s", createKEKHint)
	}
	// All hex digits in an even number is hex: 32 bytes in base64 are 43
	// or 44 characters, the 44 ending in "=".
	var decoded []byte
	if len(s)%2 == 0 && !bytes.ContainsFunc(s, func(r rune) bool { return !strings.ContainsRune("0123456789abcdefABCDEF", r) }) {
		decoded, _ = hex.DecodeString(string(s))
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(string(s)); err == nil {
				decoded = b
				break
			}
		}
	}
	if decoded == nil {
		return KEK{}, fmt.Errorf("the KEK is neither base64 nor hex; %s", createKEKHint)
	}
	defer clear(decoded)
	if len(decoded) != KEKSize {
		return KEK{}, fmt.Errorf("the KEK decodes to %d bytes, want %d; %s", len(decoded), KEKSize, createKEKHint)
	}
	var k [KEKSize]byte
	copy(k[:], decoded)
	return KEK{key: &k}, nil
}

// derive returns the 32-byte key for one purpose, so that the CA key, the
// keyring and the KEK check value never share a key.
func (k KEK) derive(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, k.key[:], nil, "reconciler local provider v1: "+purpose, 32)
	if err != nil {
		// hkdf.Key fails only for lengths SHA-256 cannot produce.
		panic(fmt.Sprintf("derive KEK subkey: %v", err))
	}
	return key
}

// id names the KEK without revealing it: sealed files carry it, so that a
// wrong KEK is told apart from a damaged file.
func (k KEK) id() string {
	return hex.EncodeToString(k.derive("key id")[:8])
}

// String hides the KEK.
func (k KEK) String() string {
	if k.key == nil {
		return "[no KEK]"
	}
	return "[redacted]"
}

// GoString hides the KEK from %#v.
func (k KEK) GoString() string { return k.String() }

// LogValue hides the KEK from slog.
func (k KEK) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Format hides the KEK from every fmt verb, %x and %s included.
func (k KEK) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }
