// Package postgres is the state store on PostgreSQL, for running several
// `reconciler run` replicas on one database: they elect a leader, which
// alone reconciles, while the followers forward agents and API calls to
// it. It keeps the same records as store/sqlite and runs the same contract
// (store/storetest), on github.com/jackc/pgx/v5 and a connection pool.
//
// # Schema
//
// migrations/NNNN_name.sql, embedded and applied in order at Open, each in
// a transaction of its own that also records it in schema_migrations. The
// numbers mean what SQLite's do: 0001 the tables instances, rpc_keys,
// certificates and history, 0002 instances.applied_spec, 0003
// instances.in_flight (store.InFlight as JSON, NULL when none). 0004, the
// one-row leader table, is PostgreSQL's alone: SQLite serves one process,
// which leads without an election. Each migration's transaction first
// takes an advisory transaction lock, so replicas starting together apply
// each migration once; a database newer than this build is refused
// (store.ErrNewerSchema) rather than misread.
//
// Instance names are text COLLATE "C", and List sorts in Go besides, so
// the order is byte-wise whatever the database's collation. Times are
// timestamptz to the microsecond, NULL when zero; bytes are bytea; the
// uint64 counters are stored bit for bit in bigint (from 2^63 up they read
// back right but sort negative in SQL); the agent's status and the
// generation in flight are json, kept as written. PostgreSQL text holds no
// NUL byte and no invalid UTF-8, so Update refuses a record with one in a
// text field (store.ErrInvalid), where SQLite would store it.
//
// # Writes
//
// Update and Delete run READ COMMITTED transactions that first take an
// advisory transaction lock on the instance, so the writes of one instance
// queue behind each other and each reads what the last committed; they
// run again on a serialization failure or a deadlock, which is when
// Update's fn runs more than once. Update rewrites an instance's keys,
// certificate or history only when fn changed them: most writes (a
// status, the watermarks) are one row. A write is durable when it returns, as
// far as the server's synchronous_commit promises (on by default; leave it
// on for this database). Reads run in REPEATABLE READ, read-only, so a
// record is read at one moment across its four tables.
//
// # Leader election and fencing
//
// Campaign opens a session of its own (outside the pool) and polls
// pg_try_advisory_lock(LeaderLockKey) in it; the session that gets the
// lock increments the leader row's epoch and records its id, address and
// the time. The leader pings that session every LeaseCheck: when the
// session fails (the server restarted, the backend was terminated, the
// network broke), Done is closed and the replica stops leading. The
// server releases a session's lock when the session ends, and the next
// replica's poll takes it within LeaseRetry.
//
// A lock alone cannot stop a leader that has not yet noticed its loss, so
// the writes are fenced: once a Store won a Campaign, each Update and
// Delete reads the leader row's epoch FOR SHARE inside its transaction
// and is refused with store.ErrFenced unless it is the epoch the Store
// won, and the Leadership has not ended. The row lock makes the next
// leader's epoch increment wait for every write that read the old epoch,
// and every write that reads after it sees the new one: a stale leader's
// write either commits before the new term begins or not at all. A Store
// that never campaigned is not fenced (one process alone, and tests).
//
// # Operations
//
//   - The role needs CREATE on the database's schema (the first of its
//     search_path) while migrations are pending: at the first start and
//     after an upgrade that brings one. Otherwise it only reads and writes
//     the tables. Set search_path in the DSN to keep the tables apart from
//     others.
//   - The advisory locks are per database, not per schema: run one fleet's
//     replicas per database. pg_locks shows the leader's lock as
//     locktype advisory, classid 1919247215, objid 1852008812, objsubid 1
//     (LeaderLockKey, the ASCII of "reconcil"); terminating its pid, from
//     pg_locks, moves the leadership. The instance locks are two-key
//     advisory locks of class 1919247209 ("reci"), held for a write's
//     transaction only.
//   - The leader's session must be a real one: not through a PgBouncer in
//     transaction or statement mode, which would hand the session lock to
//     whoever shares the server connection. The pool's connections may go
//     through one in session mode.
//   - A PostgreSQL restart or failover ends every session, so the
//     leadership ends too: the leader's Done closes at its next check, and
//     the replicas campaign again once the server is back. The epoch keeps
//     counting up across terms.
//   - The leader's session asks the server for TCP keepalives every few
//     seconds, so that a leader cut off by the network loses its lock
//     within half a minute (a DSN that sets tcp_keepalives_* wins).
package postgres
