package signature_test

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/reconciler-dev/reconciler/sources/signature"
)

// TestHostileSignatures puts signatures on a commit that a pusher could
// craft to break the verifier rather than to pass it. Each must be
// refused, not crash the process.
func TestHostileSignatures(t *testing.T) {
	v, err := signature.New(signature.Config{
		AllowedSigners: filepath.Join(fixtures, "allowed_signers"),
		GPGKeyring:     filepath.Join(fixtures, "keyring.asc"),
	})
	if err != nil {
		t.Fatal(err)
	}
	gpg := fixtureCommit(t, "gpg")
	ssh := fixtureCommit(t, "ssh")
	tests := []struct {
		name   string
		base   *object.Commit
		sig    string
		reason error
	}{
		{
			// go-crypto before v1.5 indexed an empty exportable-certification
			// subpacket and panicked.
			name:   "empty exportable-certification subpacket",
			base:   gpg,
			sig:    withSubpacket(t, gpg.PGPSignature, []byte{0x01, 0x04}),
			reason: signature.ErrUnsupported,
		},
		{
			name:   "signature packet cut short",
			base:   gpg,
			sig:    rearmor(t, unarmor(t, gpg.PGPSignature)[:20]),
			reason: signature.ErrUnsupported,
		},
		{
			name:   "public key block instead of a signature",
			base:   gpg,
			sig:    strings.ReplaceAll(gpg.PGPSignature, "SIGNATURE", "PUBLIC KEY BLOCK"),
			reason: signature.ErrUnsupported,
		},
		{
			name:   "ssh armor around garbage",
			base:   ssh,
			sig:    "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n",
			reason: signature.ErrUnsupported,
		},
		{
			name:   "ssh signature followed by text",
			base:   ssh,
			sig:    ssh.PGPSignature + "trailing\n",
			reason: signature.ErrUnsupported,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := *tt.base
			c.PGPSignature = tt.sig
			obj := &plumbing.MemoryObject{}
			if err := c.Encode(obj); err != nil {
				t.Fatal(err)
			}
			decoded, err := object.DecodeCommit(nil, obj)
			if err != nil {
				t.Fatal(err)
			}
			_, err = v.VerifyCommit(decoded)
			if !errors.Is(err, tt.reason) {
				t.Errorf("VerifyCommit() error = %v, want %v", err, tt.reason)
			}
		})
	}
}

func unarmor(t *testing.T, sig string) []byte {
	t.Helper()
	block, err := armor.Decode(strings.NewReader(sig))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(block.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rearmor(t *testing.T, body []byte) string {
	t.Helper()
	var out bytes.Buffer
	w, err := armor.Encode(&out, "PGP SIGNATURE", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String() + "\n"
}

// withSubpacket adds sub to the hashed subpackets of the v4 signature
// packet in sig, as gpg writes it: an old-format header with a one-byte
// length.
func withSubpacket(t *testing.T, sig string, sub []byte) string {
	t.Helper()
	b := unarmor(t, sig)
	if b[0] != 0x88 || b[2] != 4 {
		t.Fatalf("not an old-format v4 signature packet: % x", b[:3])
	}
	hashed := int(b[6])<<8 | int(b[7])
	out := append([]byte{0x88, b[1] + byte(len(sub)), 4, b[3], b[4], b[5], byte((hashed + len(sub)) >> 8), byte(hashed + len(sub))}, sub...)
	out = append(out, b[8:]...)
	return rearmor(t, out)
}
