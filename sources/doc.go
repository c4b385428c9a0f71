// Package sources reads the fleet repository: the instance files and the
// policies at a revision.
//
// A Source hands out Snapshots, read-only file systems rooted at the fleet
// root. Implementations live in subpackages: sources/dir for a directory (the
// working tree) and sources/git for a git repository, local or remote.
//
// Paths inside a Snapshot are always slash-separated and relative to the
// fleet root, never to the repository root or the process's directory: a
// fleet kept in a subdirectory of a larger repository reads the same as one
// at the top.
package sources
