package store

import (
	"context"
	"errors"
)

// Store keeps the reconciler's durable state per instance. Safe for concurrent use.
//
// Every method returns once its work is durable or has failed: a record
// Update returned survives a crash of the process and of the host. Records
// returned are the caller's own; changing one changes nothing stored.
type Store interface {
	// Get returns the instance's record, or an error wrapping ErrNotFound.
	Get(ctx context.Context, name string) (*Record, error)
	// Update runs fn on the instance's record (a new Record with only Name set
	// when there is none) inside one transaction and commits before it
	// returns the record as stored. If fn returns an error nothing is
	// written and Update returns that error. fn may run more than once when
	// the transaction must be retried, so it must not have side effects.
	//
	// Before writing, Update checks and tidies the record with Prepare: a
	// record it refuses (fn renamed it, two current keys, an unknown state)
	// is not written and the error wraps ErrInvalid.
	Update(ctx context.Context, name string, fn func(*Record) error) (*Record, error)
	// Delete forgets an instance; deleting a missing one is not an error.
	Delete(ctx context.Context, name string) error
	// List returns every record, sorted by name.
	//
	// The order is byte-wise, as Go compares strings, whatever the
	// database's collation.
	List(ctx context.Context) ([]Record, error)
}

// ErrNotFound marks a record that does not exist.
var ErrNotFound = errors.New("instance not in the state store")

// ErrInvalid marks a record Update refuses to write.
var ErrInvalid = errors.New("invalid state record")

// ErrNewerSchema marks a database written by a newer reconciler: its schema
// version is above the newest this build knows, and it is refused rather
// than misread. Upgrade the reconciler, or restore a backup.
var ErrNewerSchema = errors.New("state store schema is newer than this reconciler")

// ErrFenced marks a write refused because this process no longer holds
// the leadership it was made under: another replica took over, and only
// its writes count. The process stops reconciling and campaigns again.
var ErrFenced = errors.New("state store write fenced: this replica is no longer the leader")
