// Package signature decides whether a commit's signature is trusted: the
// trust configuration (an OpenSSH allowed_signers file, an OpenPGP public
// keyring, or both), the verification of one commit's signature against
// it, and the modes that say which commits of a revision must be signed.
// Walking a repository's history is the source's business: sources/git
// uses this package for Source.Verify.
//
// SSH signatures (git's gpg.format=ssh) are checked as git checks them
// with ssh-keygen -Y verify: an SSHSIG signature in namespace "git", by a
// key of the allowed_signers file on a line whose namespaces= and
// valid-after=/valid-before= allow it at the commit's committer time. One
// more rule than git's: the committer's email must match the principals
// of that line, so a trusted key cannot sign in someone else's name.
// OpenPGP signatures (gpg) must be made by a key of the keyring that is
// neither expired nor revoked now.
//
// What newcomers get wrong:
//
//   - valid-before bounds the committer time the signer wrote in the
//     commit, not the time of verification: whoever holds the key can
//     backdate a commit. To stop trusting a key, remove it from
//     allowed_signers; valid-before is for rotation, not revocation.
//     OpenPGP expiry and revocation, by contrast, are checked against
//     the current time, as gpg does.
//   - A Verifier reads its files once. Build a new one when they change;
//     it is cheap and safe to share between goroutines.
//   - VerifyCommit needs the commit as decoded from the repository: the
//     signature covers the stored bytes, which go-git keeps with a
//     decoded commit. A commit built or edited in memory is encoded anew,
//     and may not match what was signed.
package signature
