package postgres

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

// everyInstance asks queueLoad for all records.
const everyInstance = ""

// read is one of load's four queries.
type read struct {
	table  string
	column string // the one naming the instance
	sql    string // %s is where the filter on one instance goes
}

var (
	readInstances = read{"instances", "name", `SELECT name, applied_revision, applied_at, applied_spec, generation, previous_serial,
       status, sent, received, updated_at, in_flight
FROM instances%s`}
	readKeys = read{"rpc_keys", "instance", `SELECT instance, version, wrapped, master_version, state
FROM rpc_keys%s ORDER BY instance, version`}
	readCertificates = read{"certificates", "instance", `SELECT instance, serial, fingerprint, not_before, not_after, state
FROM certificates%s`}
	readHistory = read{"history", "instance", `SELECT instance, revision, generation, applied_at
FROM history%s ORDER BY instance, position`}
)

// loader gathers the rows of load's four queries into records.
type loader struct {
	recs []store.Record
	at   map[string]int // index in recs by name
}

// queueLoad queues on b the reads of instance name's record, or of all
// records for everyInstance: one query per table, whatever the number of
// records, joined here by name. Once b is sent and closed without error,
// records returns them sorted by name, byte-wise.
func queueLoad(b *pgx.Batch, name string) (records func() []store.Record) {
	l := &loader{at: map[string]int{}}
	readInstances.queue(b, name, l.instance)
	readKeys.queue(b, name, l.key)
	readCertificates.queue(b, name, l.certificate)
	readHistory.queue(b, name, l.history)
	return func() []store.Record {
		// The column's collation sorts alike, but the database's encoding
		// need not be UTF-8; Go's order is the contract.
		slices.SortFunc(l.recs, func(a, b store.Record) int { return cmp.Compare(a.Name, b.Name) })
		return l.recs
	}
}

// queue queues the read, filtered on one instance unless name is
// everyInstance, with scan called for each row.
func (rd read) queue(b *pgx.Batch, name string, scan func(pgx.Rows) error) {
	var args []any
	filter := ""
	if name != everyInstance {
		filter, args = " WHERE "+rd.column+" = $1", []any{name}
	}
	b.Queue(fmt.Sprintf(rd.sql, filter), args...).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("read %s: %w", rd.table, err)
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read %s: %w", rd.table, err)
		}
		return nil
	})
}

func (l *loader) instance(rows pgx.Rows) error {
	var (
		r                          store.Record
		appliedAt, updatedAt       pgtype.Timestamptz
		status, inFlight           []byte
		generation, sent, received int64
	)
	if err := rows.Scan(&r.Name, &r.AppliedRevision, &appliedAt, &r.AppliedSpec, &generation, &r.PreviousSerial,
		&status, &sent, &received, &updatedAt, &inFlight); err != nil {
		return err
	}
	if len(r.AppliedSpec) == 0 {
		r.AppliedSpec = nil
	}
	if inFlight != nil {
		r.InFlight = new(store.InFlight)
		if err := json.Unmarshal(inFlight, r.InFlight); err != nil {
			return fmt.Errorf("decode generation in flight of %q: %w", r.Name, err)
		}
	}
	// bigint holds the uint64 counters bit for bit.
	r.Generation, r.Watermarks.Sent, r.Watermarks.Received = uint64(generation), uint64(sent), uint64(received)
	if err := json.Unmarshal(status, &r.Status); err != nil {
		return fmt.Errorf("decode status of %q: %w", r.Name, err)
	}
	r.AppliedAt, r.UpdatedAt = fromTimestamptz(appliedAt), fromTimestamptz(updatedAt)
	l.at[r.Name] = len(l.recs)
	l.recs = append(l.recs, r)
	return nil
}

func (l *loader) key(rows pgx.Rows) error {
	var (
		instance, state string
		version, master int64
		k               store.WrappedKey
	)
	if err := rows.Scan(&instance, &version, &k.Wrapped, &master, &state); err != nil {
		return err
	}
	// The column's CHECK keeps version within uint32.
	k.Version, k.MasterVersion, k.State = uint32(version), int(master), store.KeyState(state)
	if i, ok := l.at[instance]; ok {
		l.recs[i].Keys = append(l.recs[i].Keys, k)
	}
	return nil
}

func (l *loader) certificate(rows pgx.Rows) error {
	var (
		instance, state     string
		notBefore, notAfter pgtype.Timestamptz
		c                   store.Certificate
	)
	if err := rows.Scan(&instance, &c.Serial, &c.Fingerprint, &notBefore, &notAfter, &state); err != nil {
		return err
	}
	c.State, c.NotBefore, c.NotAfter = store.CertState(state), fromTimestamptz(notBefore), fromTimestamptz(notAfter)
	if i, ok := l.at[instance]; ok {
		l.recs[i].Certificate = &c
	}
	return nil
}

func (l *loader) history(rows pgx.Rows) error {
	var (
		instance   string
		generation int64
		appliedAt  pgtype.Timestamptz
		a          store.Applied
	)
	if err := rows.Scan(&instance, &a.Revision, &generation, &appliedAt); err != nil {
		return err
	}
	a.Generation, a.At = uint64(generation), fromTimestamptz(appliedAt)
	if i, ok := l.at[instance]; ok {
		l.recs[i].History = append(l.recs[i].History, a)
	}
	return nil
}

const (
	upsertInstance = `INSERT INTO instances
    (name, applied_revision, applied_at, applied_spec, generation, previous_serial, status, sent, received, updated_at, in_flight)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (name) DO UPDATE SET
    applied_revision = excluded.applied_revision,
    applied_at = excluded.applied_at,
    applied_spec = excluded.applied_spec,
    generation = excluded.generation,
    previous_serial = excluded.previous_serial,
    status = excluded.status,
    sent = excluded.sent,
    received = excluded.received,
    updated_at = excluded.updated_at,
    in_flight = excluded.in_flight`
	insertKeys = `INSERT INTO rpc_keys (instance, version, wrapped, master_version, state)
SELECT $1::text, * FROM unnest($2::bigint[], $3::bytea[], $4::bigint[], $5::text[])`
	insertCertificate = `INSERT INTO certificates (instance, serial, fingerprint, not_before, not_after, state)
VALUES ($1, $2, $3, $4, $5, $6)`
	insertHistory = `INSERT INTO history (instance, position, revision, generation, applied_at)
SELECT $1::text, * FROM unnest($2::integer[], $3::text[], $4::bigint[], $5::timestamptz[])`
)

// queueSave queues on b the writes of r, which store.Prepare and
// checkText have passed, over old, the record as stored (nil when there is
// none): the instance row is upserted, and those of its keys, certificate
// and history that r changes are replaced. Most writes (a status, the
// watermarks) touch none of them.
//
// It sets r's status and generation in flight to what their JSON columns
// give back (json.Marshal replaces invalid UTF-8), so that r is the record
// as stored.
func queueSave(b *pgx.Batch, r, old *store.Record) error {
	status, err := json.Marshal(r.Status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	r.Status = store.AgentStatus{}
	if err := json.Unmarshal(status, &r.Status); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	var inFlight []byte // NULL when there is none
	if r.InFlight != nil {
		if inFlight, err = json.Marshal(r.InFlight); err != nil {
			return fmt.Errorf("encode generation in flight: %w", err)
		}
		r.InFlight = new(store.InFlight)
		if err := json.Unmarshal(inFlight, r.InFlight); err != nil {
			return fmt.Errorf("decode generation in flight: %w", err)
		}
	}
	// uint64 goes into bigint bit for bit.
	b.Queue(upsertInstance, r.Name, r.AppliedRevision, timestamptz(r.AppliedAt), nonNil(r.AppliedSpec), int64(r.Generation),
		r.PreviousSerial, status, int64(r.Watermarks.Sent), int64(r.Watermarks.Received), timestamptz(r.UpdatedAt), inFlight)
	if old == nil {
		old = &store.Record{} // nothing to replace, nothing to delete
	}
	if !slices.EqualFunc(r.Keys, old.Keys, sameKey) {
		if len(old.Keys) > 0 {
			b.Queue(`DELETE FROM rpc_keys WHERE instance = $1`, r.Name)
		}
		queueKeys(b, r)
	}
	if !sameCertificate(r.Certificate, old.Certificate) {
		if old.Certificate != nil {
			b.Queue(`DELETE FROM certificates WHERE instance = $1`, r.Name)
		}
		if c := r.Certificate; c != nil {
			b.Queue(insertCertificate, r.Name, c.Serial, c.Fingerprint, timestamptz(c.NotBefore), timestamptz(c.NotAfter), string(c.State))
		}
	}
	if !slices.EqualFunc(r.History, old.History, sameApplied) {
		if len(old.History) > 0 {
			b.Queue(`DELETE FROM history WHERE instance = $1`, r.Name)
		}
		queueHistory(b, r)
	}
	return nil
}

func queueKeys(b *pgx.Batch, r *store.Record) {
	if len(r.Keys) > 0 {
		var (
			versions, masters []int64
			wrapped           [][]byte
			states            []string
		)
		for _, k := range r.Keys {
			versions, masters = append(versions, int64(k.Version)), append(masters, int64(k.MasterVersion))
			wrapped, states = append(wrapped, k.Wrapped), append(states, string(k.State))
		}
		b.Queue(insertKeys, r.Name, versions, wrapped, masters, states)
	}
}

func queueHistory(b *pgx.Batch, r *store.Record) {
	if len(r.History) > 0 {
		var (
			positions   []int32
			revisions   []string
			generations []int64
			at          []pgtype.Timestamptz
		)
		for i, a := range r.History {
			positions, revisions = append(positions, int32(i)), append(revisions, a.Revision)
			generations, at = append(generations, int64(a.Generation)), append(at, timestamptz(a.At))
		}
		b.Queue(insertHistory, r.Name, positions, revisions, generations, at)
	}
}

func sameKey(a, b store.WrappedKey) bool {
	return a.Version == b.Version && a.MasterVersion == b.MasterVersion && a.State == b.State && bytes.Equal(a.Wrapped, b.Wrapped)
}

func sameCertificate(a, b *store.Certificate) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Serial == b.Serial && a.Fingerprint == b.Fingerprint && a.State == b.State &&
		a.NotBefore.Equal(b.NotBefore) && a.NotAfter.Equal(b.NotAfter)
}

func sameApplied(a, b store.Applied) bool {
	return a.Revision == b.Revision && a.Generation == b.Generation && a.At.Equal(b.At)
}

// checkText refuses, wrapping store.ErrInvalid, a record with a text
// column PostgreSQL cannot hold: a NUL byte or invalid UTF-8, which
// SQLite would keep. (The status and the generation in flight are JSON,
// which escapes a NUL and replaces invalid UTF-8.)
func checkText(r *store.Record) error {
	texts := []struct{ what, s string }{
		{"name", r.Name},
		{"applied revision", r.AppliedRevision},
		{"previous serial", r.PreviousSerial},
	}
	if c := r.Certificate; c != nil {
		texts = append(texts, struct{ what, s string }{"certificate serial", c.Serial},
			struct{ what, s string }{"certificate fingerprint", c.Fingerprint})
	}
	for _, a := range r.History {
		texts = append(texts, struct{ what, s string }{"revision in history", a.Revision})
	}
	for _, t := range texts {
		if !storable(t.s) {
			return fmt.Errorf("check record %q: %s %q is not text PostgreSQL can store (a NUL byte or invalid UTF-8): %w",
				r.Name, t.what, t.s, store.ErrInvalid)
		}
	}
	return nil
}

// storable reports whether s fits a text column.
func storable(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// timestamptz is t as stored: NULL for the zero time.
func timestamptz(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// fromTimestamptz is the stored time in UTC (pgx reads it in the local
// zone), the zero time for NULL.
func fromTimestamptz(t pgtype.Timestamptz) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// nonNil keeps a nil slice, which pgx sends as NULL, out of a NOT NULL
// bytea column.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
