// Package store is the reconciler's durable memory: per instance, what was
// applied (the git revision, the desired-state generation published to the
// agent, the last ten revisions), the wrapped RPC keys, the certificate and
// the agent's last report. The daemon reads it to resume after a restart
// and writes it as it reconciles; the API and `reconciler instance show`
// read it to answer.
//
// Store is the boundary. Implementations live in subpackages:
//
//   - store/sqlite: an embedded SQLite file, the default (no cgo).
//   - store/postgres: PostgreSQL, shared by several replicas, with leader
//     election and fenced writes.
//
// store/storetest is the contract suite every implementation runs, so one
// can replace the other without surprises.
//
// What newcomers get wrong:
//
//   - Commit first, act second. A wrapped key is written before it is
//     delivered to the agent, a certificate serial (state CertIssued) before
//     it is installed, a PreviousSerial before the new certificate goes
//     out. A crash then leaves a record that says what may be in flight,
//     never an agent holding a key or a certificate the store has not heard
//     of.
//   - Update's fn may run more than once (a transaction that must be
//     retried runs it again on a freshly read record). It must only change
//     the record: no RPCs, no issuance, no metrics inside it. Do the work,
//     then record it; or record the intent, then do the work.
//   - Records are values the caller owns: Get, Update and List return fresh
//     copies, and Clone copies one deeply before it is shared.
//
// Nothing secret is stored in clear: WrappedKey.Wrapped is ciphertext from
// the key provider, and WrappedKey prints (fmt, slog, JSON) its versions and
// state only.
package store
