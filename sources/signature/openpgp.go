package signature

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// readKeyring reads the public keys of an OpenPGP keyring: binary, or one
// or more armored blocks. name is the file's name, for errors.
func readKeyring(name string, data []byte) (openpgp.EntityList, error) {
	var keys openpgp.EntityList
	if bytes.Contains(data, []byte("-----BEGIN PGP")) {
		// ReadArmoredKeyRing reads the first block only: files made by
		// concatenating exports hold several.
		rest := data
		for {
			i := bytes.Index(rest, []byte("-----BEGIN PGP"))
			if i < 0 {
				break
			}
			block, err := armor.Decode(bytes.NewReader(rest[i:]))
			if err != nil {
				return nil, fmt.Errorf("read GPG keyring %s: %w", name, err)
			}
			if block.Type != openpgp.PublicKeyType {
				return nil, fmt.Errorf("read GPG keyring %s: it holds a %s, not public keys: export only public keys, with gpg --export --armor KEY", name, block.Type)
			}
			el, err := openpgp.ReadKeyRing(block.Body)
			if err != nil {
				return nil, fmt.Errorf("read GPG keyring %s: %w", name, err)
			}
			keys = append(keys, el...)
			rest = rest[i+len("-----BEGIN PGP"):]
		}
	} else {
		if bytes.HasPrefix(data, []byte{0, 0, 0, 32, 1, 1}) || (len(data) >= 12 && string(data[8:12]) == "KBXf") {
			return nil, fmt.Errorf("read GPG keyring %s: it is a GnuPG keybox (pubring.kbx), not a keyring: export the keys with gpg --export KEY > FILE", name)
		}
		el, err := openpgp.ReadKeyRing(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("read GPG keyring %s (export it with gpg --export [--armor] KEY): %w", name, err)
		}
		keys = el
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("read GPG keyring %s: no keys in it: export them with gpg --export --armor KEY > %s", name, name)
	}
	seen := map[string]bool{}
	for _, e := range keys {
		fp := fingerprint(e.PrimaryKey)
		if e.PrivateKey != nil {
			return nil, fmt.Errorf("read GPG keyring %s: it holds the private key of %s: export only public keys, with gpg --export KEY", name, fp)
		}
		for _, sub := range e.Subkeys {
			if sub.PrivateKey != nil {
				return nil, fmt.Errorf("read GPG keyring %s: it holds a private subkey of %s: export only public keys, with gpg --export KEY", name, fp)
			}
		}
		// A key given twice could be once with and once without its
		// revocation; the copy found first would win.
		if seen[fp] {
			return nil, fmt.Errorf("read GPG keyring %s: key %s is in it twice: export it once, with gpg --export, which merges its revocations and new expiry dates", name, fp)
		}
		seen[fp] = true
	}
	return keys, nil
}

// verifyOpenPGP checks an OpenPGP signature as git does with gpg: made by
// a key of the keyring that is neither expired nor revoked now.
func (v *Verifier) verifyOpenPGP(c *object.Commit, payload []byte) (*Signer, error) {
	hash := c.Hash.String()
	fail := func(reason error, detail string, err error) error {
		return &Error{Commit: hash, Reason: reason, Detail: detail, Err: err}
	}
	const unreadable = "its OpenPGP signature cannot be read: re-sign it with git commit --amend -S"
	block, err := armor.Decode(strings.NewReader(c.PGPSignature))
	if err != nil {
		return nil, fail(ErrUnsupported, unreadable, nil)
	}
	body, err := io.ReadAll(block.Body) // and check the armor's checksum
	if err != nil {
		return nil, fail(ErrUnsupported, unreadable, nil)
	}
	packets := packet.NewReader(bytes.NewReader(body))
	p, err := packets.Next()
	if err != nil {
		return nil, fail(ErrUnsupported, unreadable, err)
	}
	sigPacket, ok := p.(*packet.Signature)
	if !ok {
		return nil, fail(ErrUnsupported, "its OpenPGP block is not a signature: re-sign it with git commit --amend -S", nil)
	}
	if _, err := packets.Next(); err != io.EOF {
		return nil, fail(ErrUnsupported, "it carries several OpenPGP signatures, and only one is checked: re-sign it with git commit --amend -S", nil)
	}
	issuer := issuerOf(sigPacket)
	if v.keyring == nil {
		detail := fmt.Sprintf("it is signed with GPG key %s, but no GPG keyring is configured: export the key to one", issuer)
		if v.signers != nil {
			detail += ", or sign with an SSH key in allowed_signers " + v.allowedSignersFile
		}
		return nil, fail(ErrUnknownKey, detail, nil)
	}

	_, signer, err := openpgp.VerifyDetachedSignature(v.keyring, bytes.NewReader(payload), bytes.NewReader(body), nil)
	if errors.Is(err, pgperrors.ErrUnknownIssuer) {
		if sigPacket.IssuerKeyId != nil && len(v.keyring.KeysById(*sigPacket.IssuerKeyId)) > 0 {
			return nil, fail(ErrUnknownKey, fmt.Sprintf("key %s of keyring %s may not sign (it has no signing capability): sign with a signing key or subkey", issuer, v.keyringFile), nil)
		}
		return nil, fail(ErrUnknownKey, fmt.Sprintf("signed by GPG key %s which is not in keyring %s (add it with gpg --export, or sign with a key in it)", issuer, v.keyringFile), nil)
	}
	if signer == nil {
		// The signature did not verify, or could not be checked at all.
		var unsupported pgperrors.UnsupportedError
		if errors.As(err, &unsupported) {
			return nil, fail(ErrUnsupported, fmt.Sprintf("the signature by GPG key %s cannot be checked", issuer), err)
		}
		return nil, fail(ErrBadSignature, fmt.Sprintf("GPG key %s did not sign this commit: it was changed after signing, or the signature was copied from another commit", issuer), err)
	}
	who := fmt.Sprintf("GPG key %s (%s)", fingerprint(signer.PrimaryKey), primaryUID(signer))
	switch {
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return nil, fail(ErrKeyRevoked, fmt.Sprintf("%s is revoked: sign with another key in keyring %s", who, v.keyringFile), nil)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		detail := who + " has expired"
		if exp, ok := expiry(signer, sigPacket); ok {
			detail = fmt.Sprintf("%s expired on %s", who, formatTime(exp))
		}
		return nil, fail(ErrKeyExpired, detail+": extend it (gpg --quick-set-expire) and export it to keyring "+v.keyringFile+" again, or sign with a current key", nil)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return nil, fail(ErrKeyExpired, fmt.Sprintf("the signature by %s has expired: re-sign the commit with git commit --amend -S", who), nil)
	case err != nil:
		return nil, fail(ErrUnsupported, fmt.Sprintf("the signature by %s cannot be checked", who), err)
	}
	return &Signer{
		Commit:      hash,
		Format:      FormatOpenPGP,
		Fingerprint: fingerprint(signer.PrimaryKey),
		Principal:   uidFor(signer, c.Committer.Email),
		TrustedBy:   v.keyringFile,
	}, nil
}

// fingerprint formats a key's fingerprint as gpg --with-colons does.
func fingerprint(k *packet.PublicKey) string {
	return strings.ToUpper(hex.EncodeToString(k.Fingerprint))
}

// issuerOf names the key a signature says made it, for messages: its
// fingerprint if the signature carries it, else its key ID.
func issuerOf(sig *packet.Signature) string {
	switch {
	case len(sig.IssuerFingerprint) > 0:
		return strings.ToUpper(hex.EncodeToString(sig.IssuerFingerprint))
	case sig.IssuerKeyId != nil:
		return fmt.Sprintf("%016X", *sig.IssuerKeyId)
	}
	return "(unnamed)"
}

// primaryUID returns e's primary user ID, "" if it has none.
func primaryUID(e *openpgp.Entity) string {
	if id := e.PrimaryIdentity(); id != nil {
		return id.Name
	}
	return ""
}

// uidFor returns the user ID of e that holds email, else the primary one.
func uidFor(e *openpgp.Entity, email string) string {
	for _, name := range slices.Sorted(maps.Keys(e.Identities)) {
		if id := e.Identities[name]; id.UserId != nil && email != "" && strings.EqualFold(id.UserId.Email, email) {
			return name
		}
	}
	return primaryUID(e)
}

// expiry returns when the key that made sig expired: the primary key, or
// else the signing subkey.
func expiry(e *openpgp.Entity, sig *packet.Signature) (time.Time, bool) {
	self, _ := e.PrimarySelfSignature()
	if t, ok := expiresAt(e.PrimaryKey, self); ok && t.Before(time.Now()) {
		return t, true
	}
	if sig.IssuerKeyId != nil {
		for _, sub := range e.Subkeys {
			if sub.PublicKey.KeyId == *sig.IssuerKeyId {
				return expiresAt(sub.PublicKey, sub.Sig)
			}
		}
	}
	return time.Time{}, false
}

// expiresAt returns when k expires by its self-signature, if it does.
func expiresAt(k *packet.PublicKey, self *packet.Signature) (time.Time, bool) {
	if self == nil || self.KeyLifetimeSecs == nil || *self.KeyLifetimeSecs == 0 {
		return time.Time{}, false
	}
	return k.CreationTime.Add(time.Duration(*self.KeyLifetimeSecs) * time.Second), true
}
