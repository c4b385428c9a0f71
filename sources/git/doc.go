// Package git is the fleet source for a git repository: a local clone the
// user works in (Open) or a remote the reconciler follows (Clone).
//
// Snapshots read commits straight from git's object store, never from a
// checkout: Snapshot resolves a revision (HEAD, a branch, a tag, a hash,
// HEAD~1) to a commit and returns an fs.FS over that commit's tree, rooted
// at the fleet directory. Changed compares two commits' trees and lists the
// fleet files that differ, so the reconciler re-reads only those.
//
// Clone keeps a bare clone per remote URL in a cache directory, and Fetch
// (or a later Clone of the same URL) brings it up to date. Credentials are
// given with WithAuth; ssh host keys are always checked against a
// known_hosts file.
//
// Verify checks what moving the fleet from one revision to another brings
// in: that the history goes on (a revision that does not descend from the
// last one applied wraps ErrRewritten), and, with a signature.Verifier,
// that the new commit (head mode) or every new commit (strict mode) is
// signed by a trusted key. The daemon calls it before it plans anything.
//
// What newcomers get wrong:
//
//   - Open reads commits, not the working tree. An edited, uncommitted
//     instance file is invisible to it; sources/dir reads the working tree.
//   - A Snapshot's Revision is the full commit hash, whatever rev asked for:
//     record and compare it, not the branch name, which moves.
//   - go-git's object storage is not safe for concurrent use. The Source
//     serializes every access to it, including reads through a snapshot's
//     file system, with one mutex; code that adds a go-git call here must
//     hold it too. Open files are read into memory whole, so a reader holds
//     the lock only while a blob is read.
//   - Snapshot never fetches. A Source from Clone sees what its last Fetch
//     (or the Clone itself) brought; call Fetch on a poll or a webhook.
package git
