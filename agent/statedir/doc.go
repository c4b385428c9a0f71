// Package statedir is the agent's state directory: the few files that let
// a restarted agent resume where it was (the last applied state, its RPC
// keys, its message counters) without applying anything twice or reusing
// a counter.
//
// Every file is written atomically (temporary file in the directory,
// fsync, rename, directory fsync) with mode 0600, and the directory is
// 0700. Open refuses a directory that other users can read or enter,
// since the RPC keys live there: loosening its mode is a mistake an
// operator must see, not one the agent silently repairs.
package statedir
