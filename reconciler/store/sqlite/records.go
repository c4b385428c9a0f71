package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

// everyInstance asks load for all records.
const everyInstance = ""

// querier is what load and save need of a transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// read is one of load's four queries.
type read struct {
	table  string
	column string // the one naming the instance
	sql    string // %s is where the filter on one instance goes
}

var (
	readInstances = read{"instances", "name", `SELECT name, applied_revision, applied_at, applied_spec, generation, previous_serial,
       status, sent, received, updated_at, in_flight
FROM instances%s ORDER BY name`}
	readKeys = read{"rpc_keys", "instance", `SELECT instance, version, wrapped, master_version, state
FROM rpc_keys%s ORDER BY instance, version`}
	readCertificates = read{"certificates", "instance", `SELECT instance, serial, fingerprint, not_before, not_after, state
FROM certificates%s`}
	readHistory = read{"history", "instance", `SELECT instance, revision, generation, applied_at
FROM history%s ORDER BY instance, position`}
)

// load reads the record of instance name, or all records for
// everyInstance, sorted by name: one query per table, whatever the number
// of records, joined here by name.
func load(ctx context.Context, q querier, name string) ([]store.Record, error) {
	var recs []store.Record
	at := map[string]int{}
	err := readInstances.run(ctx, q, name, func(rows *sql.Rows) error {
		var (
			r                          store.Record
			appliedAt, updatedAt       sql.NullString
			inFlight                   sql.NullString
			status                     string
			generation, sent, received int64
		)
		if err := rows.Scan(&r.Name, &r.AppliedRevision, &appliedAt, &r.AppliedSpec, &generation, &r.PreviousSerial,
			&status, &sent, &received, &updatedAt, &inFlight); err != nil {
			return err
		}
		if inFlight.Valid {
			r.InFlight = new(store.InFlight)
			if err := json.Unmarshal([]byte(inFlight.String), r.InFlight); err != nil {
				return fmt.Errorf("decode generation in flight of %q: %w", r.Name, err)
			}
		}
		r.Generation, r.Watermarks.Sent, r.Watermarks.Received = uint64(generation), uint64(sent), uint64(received)
		if err := json.Unmarshal([]byte(status), &r.Status); err != nil {
			return fmt.Errorf("decode status of %q: %w", r.Name, err)
		}
		var err error
		if r.AppliedAt, err = parseTime(appliedAt); err != nil {
			return err
		}
		if r.UpdatedAt, err = parseTime(updatedAt); err != nil {
			return err
		}
		at[r.Name] = len(recs)
		recs = append(recs, r)
		return nil
	})
	if err != nil || len(recs) == 0 {
		return nil, err
	}

	err = readKeys.run(ctx, q, name, func(rows *sql.Rows) error {
		var (
			instance, state string
			k               store.WrappedKey
		)
		if err := rows.Scan(&instance, &k.Version, &k.Wrapped, &k.MasterVersion, &state); err != nil {
			return err
		}
		k.State = store.KeyState(state)
		if i, ok := at[instance]; ok {
			recs[i].Keys = append(recs[i].Keys, k)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	err = readCertificates.run(ctx, q, name, func(rows *sql.Rows) error {
		var (
			instance, state     string
			notBefore, notAfter sql.NullString
			c                   store.Certificate
		)
		if err := rows.Scan(&instance, &c.Serial, &c.Fingerprint, &notBefore, &notAfter, &state); err != nil {
			return err
		}
		c.State = store.CertState(state)
		var err error
		if c.NotBefore, err = parseTime(notBefore); err != nil {
			return err
		}
		if c.NotAfter, err = parseTime(notAfter); err != nil {
			return err
		}
		if i, ok := at[instance]; ok {
			recs[i].Certificate = &c
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	err = readHistory.run(ctx, q, name, func(rows *sql.Rows) error {
		var (
			instance   string
			generation int64
			appliedAt  sql.NullString
			a          store.Applied
		)
		if err := rows.Scan(&instance, &a.Revision, &generation, &appliedAt); err != nil {
			return err
		}
		a.Generation = uint64(generation)
		var err error
		if a.At, err = parseTime(appliedAt); err != nil {
			return err
		}
		if i, ok := at[instance]; ok {
			recs[i].History = append(recs[i].History, a)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// query is the read's SQL and arguments for one instance, or every one
// for everyInstance.
func (rd read) query(name string) (string, []any) {
	if name == everyInstance {
		return fmt.Sprintf(rd.sql, ""), nil
	}
	return fmt.Sprintf(rd.sql, " WHERE "+rd.column+" = ?"), []any{name}
}

// run runs the read, filtered on one instance unless name is
// everyInstance, and calls scan for each row.
func (rd read) run(ctx context.Context, q querier, name string, scan func(*sql.Rows) error) error {
	query, args := rd.query(name)
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("read %s: %w", rd.table, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("read %s: %w", rd.table, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", rd.table, err)
	}
	return nil
}

// save writes r, which store.Prepare has checked, over what was stored:
// the instance row is upserted, its keys, certificate and history
// replaced.
func save(ctx context.Context, tx querier, r *store.Record) error {
	status, err := json.Marshal(r.Status)
	if err != nil {
		return fmt.Errorf("encode status: %w", err)
	}
	var inFlight any // NULL when there is none
	if r.InFlight != nil {
		data, err := json.Marshal(r.InFlight)
		if err != nil {
			return fmt.Errorf("encode generation in flight: %w", err)
		}
		inFlight = string(data)
	}
	// uint64 goes into SQLite's signed INTEGER bit for bit.
	if _, err := tx.ExecContext(ctx, upsertInstance,
		r.Name, r.AppliedRevision, timeText(r.AppliedAt), nonNil(r.AppliedSpec), int64(r.Generation), r.PreviousSerial,
		string(status), int64(r.Watermarks.Sent), int64(r.Watermarks.Received), timeText(r.UpdatedAt), inFlight); err != nil {
		return fmt.Errorf("write instance: %w", err)
	}
	for _, clear := range clearParts {
		if _, err := tx.ExecContext(ctx, clear, r.Name); err != nil {
			return fmt.Errorf("clear %s: %w", strings.Fields(clear)[2], err)
		}
	}
	for _, k := range r.Keys {
		if _, err := tx.ExecContext(ctx, insertKey, r.Name, k.Version, k.Wrapped, k.MasterVersion, string(k.State)); err != nil {
			return fmt.Errorf("write rpc_keys: %w", err)
		}
	}
	if c := r.Certificate; c != nil {
		if _, err := tx.ExecContext(ctx, insertCertificate,
			r.Name, c.Serial, c.Fingerprint, timeText(c.NotBefore), timeText(c.NotAfter), string(c.State)); err != nil {
			return fmt.Errorf("write certificates: %w", err)
		}
	}
	for i, a := range r.History {
		if _, err := tx.ExecContext(ctx, insertHistory, r.Name, i, a.Revision, int64(a.Generation), timeText(a.At)); err != nil {
			return fmt.Errorf("write history: %w", err)
		}
	}
	return nil
}

// The statements of save.
const (
	upsertInstance = `INSERT INTO instances
    (name, applied_revision, applied_at, applied_spec, generation, previous_serial, status, sent, received, updated_at, in_flight)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
	insertKey         = `INSERT INTO rpc_keys (instance, version, wrapped, master_version, state) VALUES (?, ?, ?, ?, ?)`
	insertCertificate = `INSERT INTO certificates (instance, serial, fingerprint, not_before, not_after, state) VALUES (?, ?, ?, ?, ?, ?)`
	insertHistory     = `INSERT INTO history (instance, position, revision, generation, applied_at) VALUES (?, ?, ?, ?, ?)`
	deleteInstance    = `DELETE FROM instances WHERE name = ?`
)

// clearParts empties an instance's rows of the tables save replaces.
var clearParts = []string{
	`DELETE FROM rpc_keys WHERE instance = ?`,
	`DELETE FROM certificates WHERE instance = ?`,
	`DELETE FROM history WHERE instance = ?`,
}

// readQueries and writeQueries are what the readers and the writer run,
// prepared when the store opens.
func readQueries() []string {
	var qs []string
	for _, rd := range []read{readInstances, readKeys, readCertificates, readHistory} {
		one, _ := rd.query("x")
		all, _ := rd.query(everyInstance)
		qs = append(qs, one, all)
	}
	return qs
}

func writeQueries() []string {
	qs := []string{upsertInstance, insertKey, insertCertificate, insertHistory, deleteInstance, savepoint, rollbackTo, release}
	qs = append(qs, clearParts...)
	for _, rd := range []read{readInstances, readKeys, readCertificates, readHistory} {
		one, _ := rd.query("x") // Update reads the record it changes
		qs = append(qs, one)
	}
	return qs
}

// timeText is t as stored: RFC 3339 in UTC, NULL for the zero time.
func timeText(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(s sql.NullString) (time.Time, error) {
	if !s.Valid {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s.String)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse time %q: %w", s.String, err)
	}
	return t, nil
}

// nonNil keeps a nil slice out of a NOT NULL BLOB column.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
