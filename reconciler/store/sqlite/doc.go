// Package sqlite is the default state store: one embedded SQLite file, on
// the pure-Go driver modernc.org/sqlite, so the reconciler stays a single
// static binary without cgo.
//
// Every write is durable when Update or Delete returns: the database runs
// in WAL mode with synchronous=FULL, so a commit is on disk before the
// caller goes on to deliver what it recorded (a wrapped key before the
// agent gets it, a certificate serial before it is installed). Writes go
// through one connection, in BEGIN IMMEDIATE transactions, so writers queue
// in the process rather than fail on SQLite's lock; a writer in another
// process (a backup, a second reconciler by mistake) is waited for up to the
// busy timeout and then retried a few times, which is when Update's fn runs
// again. Reads use a small pool of read-only connections and do not wait
// for writers.
//
// The schema is versioned: migrations/NNNN_name.sql, embedded, applied in
// order at Open, each in its own transaction and recorded in
// schema_migrations. A database whose schema is newer than this build
// knows is refused (store.ErrNewerSchema) rather than misread, so a
// downgrade cannot corrupt it. The tables are normalised: instances,
// rpc_keys, certificates and history, with the agent's status as a JSON
// column of instances.
//
// The file is created with mode 0600 (the WAL and shared-memory files
// follow it). It holds no secret in clear, but wrapped keys and the fleet's
// layout are nobody else's business. Back it up with `sqlite3 state.db
// ".backup copy.db"` or VACUUM INTO, not by copying the file while the
// reconciler runs.
package sqlite
