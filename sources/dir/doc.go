// Package dir is the fleet source for a local directory: the working tree a
// platform engineer edits before committing, or a directory a config
// management tool keeps up to date.
//
// A directory has exactly one revision, the files as they are now, named
// "worktree". Asking for any other revision is an error rather than a silent
// read of the current files: a "diff --rev main" against a directory would
// otherwise show the working tree while claiming to show main. Point the
// reconciler at a git repository (package sources/git) to read revisions.
//
// Two things newcomers get wrong:
//
//   - A Snapshot of a directory is live, not frozen. Its FS reads the disk on
//     every call, so a file written between two reads of the same Snapshot is
//     seen by the second. Callers that need a consistent view read what they
//     need once.
//   - Symbolic links are followed only while they stay inside the directory.
//     A link to a file elsewhere on the host (../../etc/passwd, or any
//     absolute target) is an error, not a read of that file, so a fleet
//     repository cannot make the reconciler read outside it.
package dir
