package signature

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Config says which keys are trusted to sign commits. Either file, or
// both, may be given.
type Config struct {
	// AllowedSigners is the path of an OpenSSH allowed_signers file (see
	// ssh-keygen(1), ALLOWED SIGNERS), git's gpg.ssh.allowedSignersFile,
	// for commits signed with gpg.format=ssh. Its times without a Z
	// suffix are in the local time zone, as ssh-keygen reads them.
	AllowedSigners string
	// GPGKeyring is the path of an OpenPGP public keyring, armored or
	// binary, as gpg --export [--armor] writes it, for commits signed with
	// gpg. It must not hold private keys.
	GPGKeyring string
}

// Verifier checks commit signatures against the keys of a Config. It reads
// the files once, in New: build a new Verifier to see changes to them. It
// is safe for concurrent use.
type Verifier struct {
	allowedSignersFile string
	signers            []allowedSigner // nil without an allowed_signers file

	keyringFile string
	keyring     openpgp.EntityList // nil without a keyring
}

// New reads the trust configuration. An error names the file, and for
// allowed_signers the line, and says how to fix it.
func New(cfg Config) (*Verifier, error) {
	if cfg.AllowedSigners == "" && cfg.GPGKeyring == "" {
		return nil, errors.New("configure commit verification: no trusted keys: give an allowed_signers file, a GPG keyring, or both")
	}
	v := &Verifier{allowedSignersFile: cfg.AllowedSigners, keyringFile: cfg.GPGKeyring}
	if cfg.AllowedSigners != "" {
		data, err := os.ReadFile(cfg.AllowedSigners)
		if err != nil {
			return nil, fmt.Errorf("read allowed_signers: %w", err)
		}
		if v.signers, err = parseAllowedSigners(cfg.AllowedSigners, data, time.Local); err != nil {
			return nil, err
		}
	}
	if cfg.GPGKeyring != "" {
		data, err := os.ReadFile(cfg.GPGKeyring)
		if err != nil {
			return nil, fmt.Errorf("read GPG keyring: %w", err)
		}
		if v.keyring, err = readKeyring(cfg.GPGKeyring, data); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// Format is the kind of a commit signature, as git's gpg.format names it.
type Format string

const (
	// FormatSSH is a signature made with ssh-keygen -Y sign
	// (gpg.format=ssh).
	FormatSSH Format = "ssh"
	// FormatOpenPGP is a signature made with gpg (gpg.format=openpgp, the
	// default).
	FormatOpenPGP Format = "openpgp"
)

// Signer says who signed a commit and why they are trusted.
type Signer struct {
	// Commit is the commit's full hash.
	Commit string
	// Format is the kind of signature.
	Format Format
	// Fingerprint names the key: "SHA256:..." for SSH, as ssh-keygen -l
	// prints it; for OpenPGP the primary key's fingerprint in upper-case
	// hex, as gpg --with-colons prints it.
	Fingerprint string
	// Principal is who the key belongs to: for SSH the committer's email,
	// which matched the principals of the allowed_signers line; for
	// OpenPGP the key's user ID that holds the committer's email, else its
	// primary user ID.
	Principal string
	// TrustedBy is where the key is trusted: "FILE:LINE" for an
	// allowed_signers line, the keyring's path for OpenPGP.
	TrustedBy string
}

// Report is what a verification of a revision checked.
type Report struct {
	// Mode is the verification mode.
	Mode Mode
	// From is the full hash of the last applied commit, "" if none was
	// given.
	From string
	// To is the full hash of the commit to apply.
	To string
	// Signers lists the commits verified and their signers, parents before
	// children, To last. It is empty in ModeOff.
	Signers []Signer
}

// VerifyCommit checks c's signature and returns who made it. c must be as
// decoded from the repository (by go-git's CommitObject, say), so that the
// bytes its signature covers are exactly the stored ones.
//
// An SSH signature must be in namespace "git" and made by a key of the
// allowed_signers file, on a line whose principals match the committer's
// email and whose namespaces and valid-after/valid-before allow "git" at
// the committer time. An OpenPGP signature must be made by a key of the
// keyring that is, now, neither expired nor revoked. The committer's email
// is not checked against the OpenPGP key's user IDs.
//
// A commit that is not accepted gets an *Error; other errors are failures
// to read the commit.
func (v *Verifier) VerifyCommit(c *object.Commit) (signer *Signer, err error) {
	hash := c.Hash.String()
	// The signature is the pusher's to craft, and the parsers below have
	// panicked on crafted input before (go-crypto before v1.5): refuse the
	// commit rather than take the process down.
	defer func() {
		if r := recover(); r != nil {
			signer, err = nil, &Error{Commit: hash, Reason: ErrUnsupported, Detail: fmt.Sprintf("its signature cannot be read (the verifier failed: %v): re-sign it with git commit --amend -S", r)}
		}
	}()
	sig := c.PGPSignature
	if strings.TrimSpace(sig) == "" {
		return nil, &Error{Commit: hash, Reason: ErrNotSigned, Detail: "sign it with git commit -S using " + v.trusted()}
	}
	if n := strings.Count("\n"+sig, "\n-----BEGIN "); n > 1 {
		return nil, &Error{Commit: hash, Reason: ErrUnsupported,
			Detail: fmt.Sprintf("it carries %d signatures, and only one is checked: re-sign it with git commit --amend -S", n)}
	}
	payload, err := payloadOf(c)
	if err != nil {
		return nil, fmt.Errorf("verify commit %s: %w", shortHash(hash), err)
	}
	first, _, _ := strings.Cut(strings.TrimLeft(sig, " \t\r\n"), "\n")
	switch strings.TrimRight(first, " \t\r") {
	case "-----BEGIN SSH SIGNATURE-----":
		return v.verifySSH(c, payload)
	case "-----BEGIN PGP SIGNATURE-----", "-----BEGIN PGP MESSAGE-----":
		return v.verifyOpenPGP(c, payload)
	case "-----BEGIN SIGNED MESSAGE-----":
		return nil, &Error{Commit: hash, Reason: ErrUnsupported, Detail: "it is signed with X.509 (gpg.format=x509), which is not checked: sign it with an SSH or GPG key, using " + v.trusted()}
	}
	return nil, &Error{Commit: hash, Reason: ErrUnsupported, Detail: "its signature is not one git makes: sign it with git commit -S using " + v.trusted()}
}

// trusted names the keys that are trusted, for messages.
func (v *Verifier) trusted() string {
	switch {
	case v.signers != nil && v.keyring != nil:
		return "a key in allowed_signers " + v.allowedSignersFile + " or in GPG keyring " + v.keyringFile
	case v.signers != nil:
		return "an SSH key in allowed_signers " + v.allowedSignersFile + " (git config gpg.format ssh)"
	}
	return "a GPG key in keyring " + v.keyringFile
}

// payloadOf returns the bytes c's signature covers: the commit object
// without its signature headers.
func payloadOf(c *object.Commit) ([]byte, error) {
	var obj plumbing.MemoryObject
	if err := c.EncodeWithoutSignature(&obj); err != nil {
		return nil, fmt.Errorf("encode commit without its signature: %w", err)
	}
	r, err := obj.Reader()
	if err != nil {
		return nil, fmt.Errorf("encode commit without its signature: %w", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("encode commit without its signature: %w", err)
	}
	return b, nil
}

// quote quotes s, a value taken from a signature or a commit, shortened so
// that a hostile one cannot flood a message.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}

// formatTime formats t for messages.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
