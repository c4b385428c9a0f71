// Package storetest is the contract suite of the state stores: every
// store.Store implementation runs the same cases, so the daemon can move
// from SQLite to PostgreSQL without surprises.
//
// An implementation's test calls Run with two functions: open, which
// returns an empty store of the test's own (a new file, a new database or
// schema) and closes it in t.Cleanup, and reopen, which closes a store and
// opens the same data again, as a restarted reconciler would.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

// Run runs the Store contract. open must return an empty store on every
// call; reopen must close s and return a store over the same data (a nil
// reopen skips the case that needs it, which no real implementation
// should do).
func Run(t *testing.T, open func(t *testing.T) store.Store, reopen func(t *testing.T, s store.Store) store.Store) {
	cases := []struct {
		name string
		test func(t *testing.T, s store.Store)
	}{
		{"update creates a missing record", testCreate},
		{"update returns the record as stored", testAsStored},
		{"get of a missing record wraps ErrNotFound", testNotFound},
		{"an fn error writes nothing", testFnError},
		{"an invalid record is refused and nothing written", testInvalid},
		{"history keeps the ten newest, newest first", testHistory},
		{"keys rotate: next, then promotion in one update", testKeys},
		{"certificate goes from issued to installed to revoked", testCertificate},
		{"delete is idempotent and forgets everything", testDelete},
		{"list is sorted by name, byte-wise", testList},
		{"records returned are the caller's own", testCopies},
		{"concurrent updates of one instance lose nothing", testConcurrent},
		{"a cancelled context writes nothing", testCancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, open(t)) })
	}
	t.Run("a record survives close and reopen", func(t *testing.T) {
		if reopen == nil {
			t.Skip("no reopen function")
		}
		testReopen(t, open(t), reopen)
	})
}

const name = "orders-db"

// ignoreUpdatedAt leaves out the one field the store sets itself;
// checkUpdatedAt looks at it.
var ignoreUpdatedAt = cmpopts.IgnoreFields(store.Record{}, "UpdatedAt")

// full is a record with every field set, its times to the microsecond (as
// stores keep them) in a zone that is not UTC, and counters beyond what a
// signed 64-bit column holds.
func full(name string) *store.Record {
	at := time.Date(2025, 3, 14, 9, 26, 53, 589793000, time.FixedZone("UTC+2", 2*60*60))
	return &store.Record{
		Name:            name,
		AppliedRevision: "3f2a9c1d5e7b8a6f4c3d2e1f0a9b8c7d6e5f4a3b",
		AppliedAt:       at,
		AppliedSpec:     []byte(`{"Metadata":{"Name":"` + name + `"},"Spec":{"SSL":"enabled"}}`),
		Generation:      1<<63 + 7,
		InFlight: &store.InFlight{Generation: 1<<63 + 7, Revision: "9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b",
			Spec: []byte(`{"Metadata":{"Name":"` + name + `"},"Spec":{"SSL":"disabled"}}`), SSL: true, PublishedAt: at.Add(2 * time.Minute)},
		Keys: []store.WrappedKey{
			{Version: 4, Wrapped: []byte("vault:v2:wrapped-4"), MasterVersion: 2, State: store.KeyCurrent},
			{Version: 5, Wrapped: []byte("vault:v3:wrapped-5"), MasterVersion: 3, State: store.KeyNext},
		},
		Certificate: &store.Certificate{
			Serial:      "3a:7f:00:c2",
			Fingerprint: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			NotBefore:   at.Add(-time.Hour),
			NotAfter:    at.Add(90 * 24 * time.Hour),
			State:       store.CertIssued,
		},
		PreviousSerial: "3a:7e:ff:01",
		Status: store.AgentStatus{
			Phase:       "Active",
			Generation:  1<<63 + 6,
			SSL:         true,
			Verified:    true,
			Serial:      "3a:7e:ff:01",
			Fingerprint: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
			NotAfter:    at.Add(30 * 24 * time.Hour),
			KeyVersion:  4,
			Message:     "serving TLS",
			ReportedAt:  at.Add(time.Minute),
		},
		Watermarks: store.Watermarks{Sent: 1<<64 - 1, Received: 41},
		History: []store.Applied{
			{Revision: "3f2a9c1d5e7b8a6f4c3d2e1f0a9b8c7d6e5f4a3b", Generation: 1<<63 + 7, At: at},
			{Revision: "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c", Generation: 1<<63 + 6, At: at.Add(-24 * time.Hour)},
		},
	}
}

// set is an Update fn that makes the record want.
func set(want *store.Record) func(*store.Record) error {
	return func(r *store.Record) error {
		*r = *want.Clone()
		return nil
	}
}

func update(t *testing.T, s store.Store, name string, fn func(*store.Record) error) *store.Record {
	t.Helper()
	got, err := s.Update(context.Background(), name, fn)
	if err != nil {
		t.Fatalf("Update(%q): %v", name, err)
	}
	return got
}

func get(t *testing.T, s store.Store, name string) *store.Record {
	t.Helper()
	got, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return got
}

func checkRecord(t *testing.T, want, got *store.Record) {
	t.Helper()
	if diff := cmp.Diff(want, got, ignoreUpdatedAt); diff != "" {
		t.Errorf("record mismatch (-want +got):\n%s", diff)
	}
}

func checkUpdatedAt(t *testing.T, got *store.Record, before, after time.Time) {
	t.Helper()
	if got.UpdatedAt.Before(before.Truncate(time.Microsecond)) || got.UpdatedAt.After(after) {
		t.Errorf("UpdatedAt = %s, want between %s and %s", got.UpdatedAt, before, after)
	}
}

func testCreate(t *testing.T, s store.Store) {
	want := full(name)
	var seen *store.Record
	before := time.Now()
	got := update(t, s, name, func(r *store.Record) error {
		seen = r.Clone()
		*r = *want.Clone()
		return nil
	})
	after := time.Now()
	if diff := cmp.Diff(&store.Record{Name: name}, seen); diff != "" {
		t.Errorf("fn saw a record that is not new (-want +got):\n%s", diff)
	}
	checkRecord(t, want, got)
	checkUpdatedAt(t, got, before, after)
	if diff := cmp.Diff(got, get(t, s, name)); diff != "" {
		t.Errorf("Get after Update (-want +got):\n%s", diff)
	}
}

func testAsStored(t *testing.T, s store.Store) {
	// Nanoseconds, a local zone and empty slices: whatever the store does
	// to them, Update's answer must be what Get reads back.
	at := time.Date(2025, 7, 1, 23, 59, 59, 999999999, time.FixedZone("UTC-7", -7*60*60))
	rec := &store.Record{
		Name:        name,
		AppliedAt:   at,
		Keys:        []store.WrappedKey{},
		History:     []store.Applied{},
		Certificate: &store.Certificate{Serial: "01", NotAfter: at, State: store.CertIssued},
		Status:      store.AgentStatus{ReportedAt: at},
	}
	got := update(t, s, name, set(rec))
	if diff := cmp.Diff(got, get(t, s, name)); diff != "" {
		t.Errorf("Get differs from what Update returned (-update +get):\n%s", diff)
	}
	got = update(t, s, name, func(r *store.Record) error { r.Generation++; return nil })
	if diff := cmp.Diff(got, get(t, s, name)); diff != "" {
		t.Errorf("after a second Update, Get differs (-update +get):\n%s", diff)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	update(t, s, "deleted-db", set(full("deleted-db")))
	if err := s.Delete(context.Background(), "deleted-db"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, n := range []string{"never-written-db", "deleted-db", "ORDERS-DB"} {
		got, err := s.Get(context.Background(), n)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(%q) = %v, %v; want an error wrapping ErrNotFound", n, got, err)
		}
	}
}

func testFnError(t *testing.T, s store.Store) {
	errNo := errors.New("policy says no")
	update(t, s, "existing-db", set(full("existing-db")))
	cases := []struct {
		name     string
		instance string
		want     *store.Record // nil: still missing
	}{
		{"on an existing record", "existing-db", get(t, s, "existing-db")},
		{"on a missing record", "missing-db", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Update(context.Background(), c.instance, func(r *store.Record) error {
				r.Generation++
				r.Keys = nil
				r.AddHistory(store.Applied{Revision: "dead"})
				return fmt.Errorf("plan %s: %w", c.instance, errNo)
			})
			if !errors.Is(err, errNo) || got != nil {
				t.Errorf("Update = %v, %v; want nil and fn's error", got, err)
			}
			after, err := s.Get(context.Background(), c.instance)
			if c.want == nil && !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get = %v, %v; want ErrNotFound", after, err)
			}
			if diff := cmp.Diff(c.want, after); diff != "" {
				t.Errorf("a failing fn wrote (-want +got):\n%s", diff)
			}
		})
	}
}

func testInvalid(t *testing.T, s store.Store) {
	key := func(v uint32, st store.KeyState) store.WrappedKey {
		return store.WrappedKey{Version: v, Wrapped: []byte{byte(v)}, MasterVersion: 1, State: st}
	}
	cases := []struct {
		name string
		fn   func(r *store.Record)
	}{
		{"renamed", func(r *store.Record) { r.Name = "other-db" }},
		{"two current keys", func(r *store.Record) { r.Keys = []store.WrappedKey{key(1, store.KeyCurrent), key(2, store.KeyCurrent)} }},
		{"two next keys", func(r *store.Record) {
			r.Keys = []store.WrappedKey{key(1, store.KeyCurrent), key(2, store.KeyNext), key(3, store.KeyNext)}
		}},
		{"two keys of one version", func(r *store.Record) { r.Keys = []store.WrappedKey{key(2, store.KeyCurrent), key(2, store.KeyNext)} }},
		{"key version 0", func(r *store.Record) { r.Keys = []store.WrappedKey{key(0, store.KeyCurrent)} }},
		{"key without wrapped bytes", func(r *store.Record) {
			r.Keys = []store.WrappedKey{{Version: 1, MasterVersion: 1, State: store.KeyCurrent}}
		}},
		{"unknown key state", func(r *store.Record) { r.Keys = []store.WrappedKey{key(1, "previous")} }},
		{"certificate without serial", func(r *store.Record) { r.Certificate.Serial = "" }},
		{"unknown certificate state", func(r *store.Record) { r.Certificate.State = "expired" }},
		{"generation 0 in flight", func(r *store.Record) { r.InFlight.Generation = 0 }},
		{"in flight beyond the published generation", func(r *store.Record) { r.InFlight.Generation = r.Generation + 1 }},
	}
	want := update(t, s, name, set(full(name)))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Update(context.Background(), name, func(r *store.Record) error {
				r.Generation++
				c.fn(r)
				return nil
			})
			if !errors.Is(err, store.ErrInvalid) || got != nil {
				t.Errorf("Update = %v, %v; want nil and an error wrapping ErrInvalid", got, err)
			}
			if diff := cmp.Diff(want, get(t, s, name)); diff != "" {
				t.Errorf("a refused record was written (-want +got):\n%s", diff)
			}
		})
	}
}

func testHistory(t *testing.T, s store.Store) {
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	applied := func(i int) store.Applied {
		return store.Applied{Revision: fmt.Sprintf("rev-%02d", i), Generation: uint64(i), At: at.Add(time.Duration(i) * time.Minute)}
	}
	for i := 1; i <= 12; i++ {
		update(t, s, name, func(r *store.Record) error {
			r.AddHistory(applied(i))
			return nil
		})
	}
	var want []store.Applied
	for i := 12; i > 2; i-- {
		want = append(want, applied(i))
	}
	if diff := cmp.Diff(want, get(t, s, name).History); diff != "" {
		t.Errorf("history after 12 applies (-want +got):\n%s", diff)
	}

	// A store must not rely on its callers: Update trims what fn leaves.
	var long []store.Applied
	for i := 30; i > 15; i-- {
		long = append(long, applied(i))
	}
	got := update(t, s, name, func(r *store.Record) error {
		r.History = slices.Clone(long)
		return nil
	})
	if diff := cmp.Diff(long[:store.MaxHistory], got.History); diff != "" {
		t.Errorf("Update kept of 15 entries (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(long[:store.MaxHistory], get(t, s, name).History); diff != "" {
		t.Errorf("Get after a 15-entry Update (-want +got):\n%s", diff)
	}
}

func testKeys(t *testing.T, s store.Store) {
	k1 := store.WrappedKey{Version: 1, Wrapped: []byte("wrapped-1"), MasterVersion: 1, State: store.KeyCurrent}
	k2 := store.WrappedKey{Version: 2, Wrapped: []byte("wrapped-2"), MasterVersion: 2, State: store.KeyNext}
	k3 := store.WrappedKey{Version: 3, Wrapped: []byte("wrapped-3"), MasterVersion: 2, State: store.KeyNext}
	current := func(k store.WrappedKey) store.WrappedKey { k.State = store.KeyCurrent; return k }
	steps := []struct {
		name string
		fn   func(r *store.Record)
		want []store.WrappedKey
	}{
		{"first key is current", func(r *store.Record) { r.Keys = append(r.Keys, k1) }, []store.WrappedKey{k1}},
		{"rotation adds a next key", func(r *store.Record) { r.Keys = append(r.Keys, k2) }, []store.WrappedKey{k1, k2}},
		{"acknowledgement promotes next and drops the old key", func(r *store.Record) {
			if !r.PromoteNext() {
				t.Error("PromoteNext found no next key")
			}
		}, []store.WrappedKey{current(k2)}},
		{"keys come back sorted by version", func(r *store.Record) { r.Keys = slices.Insert(r.Keys, 0, k3) }, []store.WrappedKey{current(k2), k3}},
		{"a second promotion finds no next key", func(r *store.Record) {
			r.PromoteNext()
			if r.PromoteNext() {
				t.Error("PromoteNext promoted twice")
			}
		}, []store.WrappedKey{current(k3)}},
	}
	for _, st := range steps {
		got := update(t, s, name, func(r *store.Record) error { st.fn(r); return nil })
		if diff := cmp.Diff(st.want, got.Keys); diff != "" {
			t.Errorf("%s: Update (-want +got):\n%s", st.name, diff)
		}
		if diff := cmp.Diff(st.want, get(t, s, name).Keys); diff != "" {
			t.Errorf("%s: Get (-want +got):\n%s", st.name, diff)
		}
	}
}

func testCertificate(t *testing.T, s store.Store) {
	at := time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)
	cert := func(serial string, st store.CertState) *store.Certificate {
		return &store.Certificate{Serial: serial, Fingerprint: "fp-" + serial, NotBefore: at, NotAfter: at.Add(72 * time.Hour), State: st}
	}
	steps := []struct {
		name     string
		fn       func(r *store.Record)
		want     *store.Certificate
		previous string
	}{
		{"issued is committed before delivery", func(r *store.Record) { r.Certificate = cert("01", store.CertIssued) },
			cert("01", store.CertIssued), ""},
		{"the agent installs it", func(r *store.Record) { r.Certificate.State = store.CertInstalled },
			cert("01", store.CertInstalled), ""},
		{"a renewal keeps the old serial to revoke", func(r *store.Record) {
			r.PreviousSerial = r.Certificate.Serial
			r.Certificate = cert("02", store.CertIssued)
		}, cert("02", store.CertIssued), "01"},
		{"once installed the old one is forgotten", func(r *store.Record) {
			r.Certificate.State = store.CertInstalled
			r.PreviousSerial = ""
		}, cert("02", store.CertInstalled), ""},
		{"disabling SSL revokes it", func(r *store.Record) { r.Certificate.State = store.CertRevoked },
			cert("02", store.CertRevoked), ""},
		{"and it can be cleared", func(r *store.Record) { r.Certificate = nil }, nil, ""},
	}
	for _, st := range steps {
		got := update(t, s, name, func(r *store.Record) error { st.fn(r); return nil })
		stored := get(t, s, name)
		for what, r := range map[string]*store.Record{"Update": got, "Get": stored} {
			if diff := cmp.Diff(st.want, r.Certificate); diff != "" {
				t.Errorf("%s: %s certificate (-want +got):\n%s", st.name, what, diff)
			}
			if r.PreviousSerial != st.previous {
				t.Errorf("%s: %s PreviousSerial = %q, want %q", st.name, what, r.PreviousSerial, st.previous)
			}
		}
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Delete(ctx, "missing-db"); err != nil {
		t.Errorf("Delete of a missing record: %v", err)
	}
	update(t, s, name, set(full(name)))
	update(t, s, "other-db", set(full("other-db")))
	for range 2 {
		if err := s.Delete(ctx, name); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := s.Get(ctx, name); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	// Nothing of the old record (keys, certificate, history) may come back.
	update(t, s, name, func(r *store.Record) error {
		if diff := cmp.Diff(&store.Record{Name: name}, r); diff != "" {
			t.Errorf("fn after Delete saw leftovers (-want +got):\n%s", diff)
		}
		return nil
	})
	checkRecord(t, full("other-db"), get(t, s, "other-db"))
}

func testList(t *testing.T, s store.Store) {
	got, err := s.List(context.Background())
	if err != nil || len(got) != 0 {
		t.Fatalf("List of an empty store = %v, %v; want nothing", got, err)
	}
	// Byte-wise: upper case before lower, "beta" before "beta-2", whatever
	// the database's collation says.
	names := []string{"orders-db", "beta-2", "Zeta", "ledger.eu", "alpha", "beta", "Ärzte-db"}
	for _, n := range names {
		update(t, s, n, set(full(n)))
	}
	got, err = s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := make([]store.Record, 0, len(names))
	for _, n := range slices.Sorted(slices.Values(names)) {
		want = append(want, *get(t, s, n))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func testCopies(t *testing.T, s store.Store) {
	want := update(t, s, name, set(full(name)))
	spoil := func(r *store.Record) {
		r.Keys[0].Wrapped[0] ^= 0xff
		r.Keys[1].State = store.KeyCurrent
		r.Certificate.Serial = "spoiled"
		r.History[0].Revision = "spoiled"
	}
	spoil(want.Clone()) // Clone copies deeply...
	got := get(t, s, name)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Clone shares with its original (-want +got):\n%s", diff)
	}
	spoil(got) // ...and what Get returned is not the store's.
	if diff := cmp.Diff(want, get(t, s, name)); diff != "" {
		t.Errorf("changing a record from Get changed the store (-want +got):\n%s", diff)
	}
	list, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	spoil(&list[0])
	if diff := cmp.Diff(want, get(t, s, name)); diff != "" {
		t.Errorf("changing a record from List changed the store (-want +got):\n%s", diff)
	}
	if (*store.Record)(nil).Clone() != nil {
		t.Error("Clone of nil is not nil")
	}
}

func testConcurrent(t *testing.T, s store.Store) {
	const writers, updates = 8, 50
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range updates {
				if _, err := s.Update(context.Background(), name, func(r *store.Record) error {
					r.Generation++
					return nil
				}); err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := get(t, s, name).Generation; got != writers*updates {
		t.Errorf("Generation = %d after %d concurrent increments: updates were lost", got, writers*updates)
	}
}

func testCancelled(t *testing.T, s store.Store) {
	want := update(t, s, name, set(full(name)))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got, err := s.Update(ctx, name, func(r *store.Record) error { r.Generation++; return nil })
	if !errors.Is(err, context.Canceled) || got != nil {
		t.Errorf("Update with a cancelled context = %v, %v; want nil and context.Canceled", got, err)
	}
	if err := s.Delete(ctx, name); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context = %v, want context.Canceled", err)
	}
	if diff := cmp.Diff(want, get(t, s, name)); diff != "" {
		t.Errorf("a cancelled Update wrote (-want +got):\n%s", diff)
	}
}

func testReopen(t *testing.T, s store.Store, reopen func(t *testing.T, s store.Store) store.Store) {
	want := update(t, s, name, set(full(name)))
	update(t, s, "gone-db", set(full("gone-db")))
	if err := s.Delete(context.Background(), "gone-db"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	s = reopen(t, s)
	got, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List after reopen: %v", err)
	}
	if diff := cmp.Diff([]store.Record{*want}, got); diff != "" {
		t.Errorf("after reopen (-want +got):\n%s", diff)
	}
}
