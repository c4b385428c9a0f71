package signature

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// namespace is the SSHSIG namespace git signs commits in.
const namespace = "git"

// verifySSH checks an SSH signature (PROTOCOL.sshsig) as git's
// gpg.format=ssh does with ssh-keygen -Y verify: the key must be in the
// allowed_signers file on a line for the committer, namespace git and the
// committer time.
func (v *Verifier) verifySSH(c *object.Commit, payload []byte) (*Signer, error) {
	hash := c.Hash.String()
	fail := func(reason error, detail string, err error) error {
		return &Error{Commit: hash, Reason: reason, Detail: detail, Err: err}
	}
	block, rest := pem.Decode([]byte(c.PGPSignature))
	if block == nil || block.Type != sshsig.PEMType || strings.TrimSpace(string(rest)) != "" {
		return nil, fail(ErrUnsupported, "its SSH signature cannot be read: re-sign it with git commit --amend -S", nil)
	}
	sig, err := sshsig.ParseSignature(block.Bytes)
	if err != nil {
		return nil, fail(ErrUnsupported, "its SSH signature cannot be read: re-sign it with git commit --amend -S", err)
	}
	if _, ok := sig.PublicKey.(*ssh.Certificate); ok {
		return nil, fail(ErrUnsupported, "it is signed with an SSH certificate, which is not checked: sign with the key itself (set user.signingkey to the key, not its certificate)", nil)
	}
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	if v.signers == nil {
		detail := fmt.Sprintf("it is signed with SSH key %s, but no allowed_signers file is configured: list the key in one", fp)
		if v.keyring != nil {
			detail += ", or sign with a GPG key in keyring " + v.keyringFile
		}
		return nil, fail(ErrUnknownKey, detail, nil)
	}
	wire := sig.PublicKey.Marshal()
	var lines []*allowedSigner
	for i := range v.signers {
		if bytes.Equal(v.signers[i].key.Marshal(), wire) {
			lines = append(lines, &v.signers[i])
		}
	}
	if len(lines) == 0 {
		return nil, fail(ErrUnknownKey, fmt.Sprintf("signed by %s which is not in allowed_signers %s (add it, or sign with a listed key)", fp, v.allowedSignersFile), nil)
	}

	err = sshsig.Verify(bytes.NewReader(payload), sig, sig.PublicKey, sig.HashAlgorithm, namespace)
	switch {
	case errors.Is(err, sshsig.ErrNamespaceMismatch):
		return nil, fail(ErrWrongNamespace, fmt.Sprintf("the signature by %s is for namespace %s, not %q, so git did not make it: re-sign the commit with git commit --amend -S", fp, quote(sig.Namespace), namespace), nil)
	case errors.Is(err, sshsig.ErrUnsupportedHashAlgorithm), errors.Is(err, sshsig.ErrUnavailableHashAlgorithm):
		return nil, fail(ErrUnsupported, fmt.Sprintf("the signature by %s uses hash %s, which is not checked: re-sign the commit with a current ssh-keygen", fp, quote(sig.HashAlgorithm.String())), nil)
	case err != nil:
		return nil, fail(ErrBadSignature, fmt.Sprintf("key %s did not sign this commit: it was changed after signing, or the signature was copied from another commit", fp), err)
	}

	// The key signed the commit. Is it trusted for this committer, in
	// namespace git, at the committer time? The first line that says yes
	// wins, as with ssh-keygen; if none does, a line for the committer
	// tells why better than one for someone else.
	committer, when := c.Committer.Email, c.Committer.When
	var refusal error
	for _, l := range lines {
		if !matchPatternList(committer, l.principals) {
			continue
		}
		at := fmt.Sprintf("allowed_signers %s line %d", v.allowedSignersFile, l.line)
		var why error
		switch {
		case l.namespaces != "" && !matchPatternList(namespace, l.namespaces):
			why = fail(ErrWrongNamespace, fmt.Sprintf("%s allows %s only for namespaces %q: add git to them", at, fp, l.namespaces), nil)
		case !l.validAfter.IsZero() && when.Before(l.validAfter):
			why = fail(ErrKeyNotYetValid, fmt.Sprintf("%s makes %s valid from %s, after the committer time %s: sign with a key valid then, or move valid-after", at, fp, formatTime(l.validAfter), formatTime(when)), nil)
		case !l.validBefore.IsZero() && when.After(l.validBefore):
			why = fail(ErrKeyExpired, fmt.Sprintf("%s makes %s valid until %s, before the committer time %s: re-sign the commit with a current key", at, fp, formatTime(l.validBefore), formatTime(when)), nil)
		default:
			return &Signer{
				Commit:      hash,
				Format:      FormatSSH,
				Fingerprint: fp,
				Principal:   committer,
				TrustedBy:   fmt.Sprintf("%s:%d", v.allowedSignersFile, l.line),
			}, nil
		}
		if refusal == nil {
			refusal = why
		}
	}
	if refusal != nil {
		return nil, refusal
	}
	var listed []string
	for _, l := range lines {
		listed = append(listed, fmt.Sprintf("line %d: %s", l.line, l.principals))
	}
	return nil, fail(ErrWrongPrincipal, fmt.Sprintf("committer %s is not a principal of %s in allowed_signers %s (%s): commit as one of them, or add the address to the key's line",
		quote(committer), fp, v.allowedSignersFile, strings.Join(listed, "; ")), nil)
}
