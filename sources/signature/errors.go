package signature

import (
	"errors"
	"fmt"
)

// The reasons a commit is not accepted. Every error of VerifyCommit about
// the commit itself is an *Error whose Reason is one of these, so a caller
// matches them with errors.Is, or tells a refused commit from a failure to
// read one with errors.As.
var (
	// ErrNotSigned: the commit carries no signature.
	ErrNotSigned = errors.New("not signed")
	// ErrUnknownKey: the signing key is in neither the allowed_signers file
	// nor the keyring, or the trust for its kind of signature is not
	// configured at all.
	ErrUnknownKey = errors.New("signed by an unknown key")
	// ErrBadSignature: the signature was not made over this commit by the
	// key it names. The commit was changed after signing, or the signature
	// was copied from another commit.
	ErrBadSignature = errors.New("signature does not match the commit")
	// ErrWrongPrincipal: the SSH key is trusted, but not for the
	// committer's address.
	ErrWrongPrincipal = errors.New("committer is not a principal of the key")
	// ErrWrongNamespace: the SSH signature was made for another purpose
	// than git's (its namespace is not "git"), or the allowed_signers entry
	// restricts the key to other namespaces.
	ErrWrongNamespace = errors.New("signature namespace not allowed")
	// ErrKeyExpired: the SSH key's valid-before lies before the commit's
	// committer time, or the OpenPGP key (or the signature) has expired.
	ErrKeyExpired = errors.New("key expired")
	// ErrKeyNotYetValid: the SSH key's valid-after lies after the commit's
	// committer time.
	ErrKeyNotYetValid = errors.New("key not yet valid")
	// ErrKeyRevoked: the OpenPGP key, its signing subkey or its primary
	// user ID is revoked.
	ErrKeyRevoked = errors.New("key revoked")
	// ErrUnsupported: the signature cannot be read, or is of a kind this
	// package does not check (X.509, an SSH certificate, several
	// signatures on one commit).
	ErrUnsupported = errors.New("unsupported signature")
)

// Error says why a commit was not accepted, in words a user can act on. It
// never quotes the signature.
type Error struct {
	// Commit is the commit's full hash.
	Commit string
	// Reason is one of the Err variables of this package.
	Reason error
	// Detail says what was found and how to put it right.
	Detail string
	// Err is the underlying error, if any.
	Err error
}

// Error reads "commit 3f2a9c1: <reason>: <detail>[: <underlying error>]".
func (e *Error) Error() string {
	msg := fmt.Sprintf("commit %s: %v", shortHash(e.Commit), e.Reason)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the Reason and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.Err}
}

// shortHash abbreviates a commit hash as git log --oneline does.
func shortHash(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}
