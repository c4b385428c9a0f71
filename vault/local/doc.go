// Package local is the embedded key provider, the default when no Vault
// is configured: laptops, the quickstart and the tests. It implements
// vault.Issuer, vault.KeyWrapper and vault.MasterRotator with a CA and a
// keyring kept in a state directory, sealed under a key-encryption key
// (KEK) that the operator supplies.
//
// # The KEK
//
// The KEK is 32 random bytes, written as base64 or hex, read from a file
// (LoadKEK, which refuses a file group or others can access) or from an
// environment variable (KEKFromEnv, RECONCILER_KEK by default). There is
// no default KEK in the code, on purpose: Trove shipped default keys. Make
// one with
//
//	head -c 32 /dev/urandom | base64 > kek; chmod 600 kek
//
// and keep it apart from the state directory: a backup holding both gives
// away everything. Losing the KEK loses the CA's private key and every
// wrapped RPC key, for good; nothing in the state directory can be
// recovered without it. Back it up, separately.
//
// # The state directory
//
// New creates the directory (mode 0700) and, on first use, the CA and the
// first master key version. Every file is written atomically (temporary
// file, fsync, rename) with mode 0600:
//
//   - ca.pem: the CA certificate (ECDSA P-256, self-signed, ten years), in
//     clear. Not secret; clients trust it. Rewritten from ca-key.enc if it
//     goes missing.
//   - ca-key.enc: the CA's private key (and its certificate), sealed.
//     Secret: whoever can open it can issue certificates every instance
//     trusts.
//   - keyring.enc: every master key version (32 random bytes each) that
//     wraps RPC keys, sealed. Secret: it opens every wrapped RPC key.
//   - revocations.json: the revoked serials and the last CRL number, in
//     clear. Not secret, but losing it un-revokes certificates.
//   - lock: an empty file locked while a Provider changes the state, so
//     several Providers and processes can share the directory.
//   - in-use: an empty file every open Provider holds a shared lock on
//     until Close (or its process ends), and ChangeKEK an exclusive one,
//     so the KEK never changes under a running reconciler.
//   - kek-change, *.next, *.prev: only while ChangeKEK runs, or after it
//     was interrupted (see below).
//
// A sealed file is a PEM block whose headers name its purpose, format
// version and KEK (by a one-way identifier, not the KEK itself), and whose
// body is AES-256-GCM under a key derived from the KEK with HKDF for that
// purpose, with the headers as associated data. A wrong KEK is reported as
// ErrWrongKEK, a modified or truncated file as ErrDamaged (one whose KEK
// identifier was edited reads as a wrong KEK); neither ever yields garbage
// keys.
//
// Back the directory up whole (the sealed files are useless without the
// KEK) and restore it whole: New refuses a directory holding only part of
// the state rather than create a new CA or keyring that would silently
// orphan every certificate or wrapped key made with the lost one.
//
// # Changing the KEK
//
// ChangeKEK re-seals ca-key.enc and keyring.enc under a new KEK; the CA
// key and the master key versions inside stay the same, so certificates
// and wrapped keys made before keep working. It refuses while any Provider
// has the directory open (ErrInUse): stop the reconciler, change the KEK,
// start it with the new one. It is crash-safe, in three stages:
//
//  1. For each sealed file X it writes X.prev (X as it is) and X.next (X
//     sealed under the new KEK), each fsynced with the directory. Until
//     the commit, only the old KEK opens the directory; New with either
//     KEK removes the copies.
//  2. It commits by writing the journal kek-change (naming both KEKs by
//     their identifiers only). From then on, and until the journal is
//     removed, both KEKs open the directory: New with the new KEK
//     finishes the change (copies every X.next over X), New with the old
//     KEK rolls it back (copies every X.prev over X); a crash during
//     either is settled the same way by the next New, in either
//     direction. Any other KEK is refused with ErrWrongKEK, saying which
//     two would do.
//  3. It copies every X.next over X, removes the journal, then the
//     copies. From the journal's removal on, only the new KEK opens the
//     directory.
//
// Changing the KEK protects the state from a KEK that is about to leak or
// be retired, not from one that leaked together with a copy of the state
// (a backup): that copy holds the same CA key and master keys. Then also
// rotate the master key and rewrap every stored key (RotateMaster,
// Rewrap), and consider replacing the CA.
//
// # Wrapped RPC keys
//
// A wrapped key reads "local:v<N>:<base64url(nonce|ciphertext)>":
// AES-256-GCM under master key version N, with the instance name and N as
// associated data, so it unwraps for that instance only. RotateMaster adds
// a version; Rewrap moves a stored key to the newest; and
// WithMinDecryptionVersion then refuses older versions, as Vault transit's
// min_decryption_version does.
//
// What newcomers get wrong: the KEK is not a password to type into a
// config file or a flag, and it is not stored in the state directory. Give
// it to the process from a file only its user can read, or from the
// environment of a service manager that keeps it secret.
package local
