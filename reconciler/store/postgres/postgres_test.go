package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/reconciler/store/storetest"
)

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t,
		func(t *testing.T) store.Store { return openStore(t, freshDatabase(t)) },
		func(t *testing.T, s store.Store) store.Store {
			db := s.(*Store)
			dsn := db.pool.Config().ConnString()
			db.Close()
			return openStore(t, dsn)
		})
}

func TestContractWhileLeading(t *testing.T) {
	// The fence must not change what a leader's writes do.
	t.Parallel()
	storetest.Run(t,
		func(t *testing.T) store.Store {
			s := openStore(t, freshDatabase(t))
			if _, err := s.Campaign(context.Background(), "replica-a", "https://a.example:8443"); err != nil {
				t.Fatalf("Campaign: %v", err)
			}
			return s
		}, nil)
}

func TestListIsByteWiseUnderALinguisticCollation(t *testing.T) {
	t.Parallel()
	// A database whose default collation puts "a" before "B" and "Ä" next
	// to "A", as many production ones do.
	dsn := freshDatabase(t, "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'de-DE' LOCALE 'C.UTF-8'")
	s := openStore(t, dsn)
	names := []string{"b-db", "Ärzte-db", "a-db", "B-db", "A-db", "zeta", "beta-2", "beta"}
	for _, n := range names {
		if _, err := s.Update(context.Background(), n, func(r *store.Record) error { r.Generation = 1; return nil }); err != nil {
			t.Fatalf("Update(%q): %v", n, err)
		}
	}
	recs, err := s.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Name)
	}
	if diff := cmp.Diff(slices.Sorted(slices.Values(names)), got); diff != "" {
		t.Errorf("List order (-want +got):\n%s", diff)
	}
}

func TestTextPostgreSQLCannotHoldIsRefused(t *testing.T) {
	t.Parallel()
	s := openStore(t, freshDatabase(t))
	ctx := context.Background()
	want, err := s.Update(ctx, "orders-db", func(r *store.Record) error { r.AppliedRevision = "abc"; return nil })
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		fn   func(r *store.Record)
	}{
		{"NUL in the revision", func(r *store.Record) { r.AppliedRevision = "ab\x00c" }},
		{"invalid UTF-8 in the previous serial", func(r *store.Record) { r.PreviousSerial = "3a:\xff" }},
		{"NUL in the certificate serial", func(r *store.Record) {
			r.Certificate = &store.Certificate{Serial: "01\x00", State: store.CertIssued}
		}},
		{"invalid UTF-8 in the fingerprint", func(r *store.Record) {
			r.Certificate = &store.Certificate{Serial: "01", Fingerprint: "\xc3", State: store.CertIssued}
		}},
		{"NUL in a revision of the history", func(r *store.Record) { r.AddHistory(store.Applied{Revision: "\x00"}) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.Update(ctx, "orders-db", func(r *store.Record) error { c.fn(r); return nil })
			if !errors.Is(err, store.ErrInvalid) || got != nil {
				t.Errorf("Update = %v, %v; want nil and an error wrapping ErrInvalid", got, err)
			}
			after, err := s.Get(ctx, "orders-db")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, after); diff != "" {
				t.Errorf("a refused record was written (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("names", func(t *testing.T) {
		for _, n := range []string{"orders\x00db", "orders-\xffdb"} {
			if got, err := s.Update(ctx, n, func(*store.Record) error { return nil }); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Update(%q) = %v, %v; want an error wrapping ErrInvalid", n, got, err)
			}
			if got, err := s.Get(ctx, n); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get(%q) = %v, %v; want an error wrapping ErrNotFound", n, got, err)
			}
			if err := s.Delete(ctx, n); err != nil {
				t.Errorf("Delete(%q) = %v, want nil", n, err)
			}
		}
	})

	t.Run("JSON fields keep what JSON can", func(t *testing.T) {
		got, err := s.Update(ctx, "orders-db", func(r *store.Record) error {
			r.Status.Message = "nul \x00 and bad \xff byte"
			return nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if want := "nul \x00 and bad \uFFFD byte"; got.Status.Message != want {
			t.Errorf("Update returned message %q, want %q (as the JSON column holds it)", got.Status.Message, want)
		}
		stored, err := s.Get(ctx, "orders-db")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(got, stored); diff != "" {
			t.Errorf("Get differs from what Update returned (-update +get):\n%s", diff)
		}
	})
}

func TestWritesOfOneInstanceQueue(t *testing.T) {
	// Two stores (two replicas' pools, as during a handover) increment one
	// record: the instance lock, not luck, keeps every increment.
	t.Parallel()
	dsn := freshDatabase(t)
	stores := []*Store{openStore(t, dsn), openStore(t, dsn)}
	const each = 40
	var wg sync.WaitGroup
	for _, s := range stores {
		for range 3 {
			wg.Go(func() {
				for range each {
					if _, err := s.Update(context.Background(), "orders-db", func(r *store.Record) error {
						r.Generation++
						time.Sleep(100 * time.Microsecond) // widen the read-modify-write window
						return nil
					}); err != nil {
						t.Errorf("Update: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	got, err := stores[0].Get(context.Background(), "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(len(stores) * 3 * each); got.Generation != want {
		t.Errorf("Generation = %d, want %d: updates were lost", got.Generation, want)
	}
}

func TestOpenErrorsNameTheDatabase(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		dsn  string
		want string
	}{
		{"a DSN that does not parse", "postgres://user:s3cret@127.0.0.1:5432/x?sslmode=bogus", "open state store: "},
		{"a database that does not exist", withDatabase(serverDSN(), "reconciler_does_not_exist"),
			"open state store 127.0.0.1:5432/reconciler_does_not_exist: "},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := Open(context.Background(), c.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error %q does not start with %q", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

// FuzzRoundTrip writes records of arbitrary text and counters: Update
// either refuses one (ErrInvalid) or returns what Get then reads back.
func FuzzRoundTrip(f *testing.F) {
	f.Add("orders-db", "3f2a9c1d", "3a:7f", "serving TLS", uint64(1<<63+7), uint64(1<<64-1), []byte(`{"a":1}`))
	f.Add("Ärzte-db", "", "", "", uint64(0), uint64(0), []byte(nil))
	f.Add("nul-db", "ab\x00", "3a:\xff", "nul \x00 bad \xff", uint64(1), uint64(2), []byte{0})
	f.Add("x\xffy", "r", "s", "m", uint64(3), uint64(4), []byte("spec"))
	s := openStore(f, freshDatabase(f))
	f.Fuzz(func(t *testing.T, name, revision, serial, message string, generation, sent uint64, spec []byte) {
		ctx := context.Background()
		got, err := s.Update(ctx, name, func(r *store.Record) error {
			r.AppliedRevision, r.PreviousSerial, r.AppliedSpec = revision, serial, spec
			r.Generation, r.Watermarks.Sent = generation, sent
			r.Status.Message, r.Status.Generation = message, generation
			r.AddHistory(store.Applied{Revision: revision, Generation: generation})
			if generation > 0 {
				r.InFlight = &store.InFlight{Generation: generation, Revision: message, Spec: spec}
			}
			return nil
		})
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("Update(%q) = %v, want success or ErrInvalid", name, err)
			}
			return
		}
		stored, err := s.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get(%q): %v", name, err)
		}
		if diff := cmp.Diff(got, stored); diff != "" {
			t.Errorf("Get differs from what Update returned (-update +get):\n%s", diff)
		}
		if got.AppliedRevision != revision || got.PreviousSerial != serial || got.Generation != generation || got.Watermarks.Sent != sent {
			t.Errorf("Update changed a field: %+v", got)
		}
	})
}

func TestAbortedWritesRunAgain(t *testing.T) {
	cases := []struct {
		name     string
		failures int // aborts injected before the write goes through
		wantRuns int
		wantErr  bool
	}{
		{"a serialization failure runs fn again", 2, 3, false},
		{"after writeAttempts the failure is returned", 100, writeAttempts, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dsn := freshDatabase(t)
			s := openStore(t, dsn)
			// A sequence, unlike a table, counts across the rollbacks.
			if _, err := connect(t, dsn).Exec(context.Background(), fmt.Sprintf(`
CREATE SEQUENCE aborts;
CREATE FUNCTION abort_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('aborts') <= %d THEN
        RAISE EXCEPTION 'injected' USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER abort_write BEFORE INSERT OR UPDATE ON instances FOR EACH ROW EXECUTE FUNCTION abort_write();`, c.failures)); err != nil {
				t.Fatal(err)
			}
			runs := 0
			got, err := s.Update(context.Background(), "orders-db", func(r *store.Record) error {
				runs++
				r.Generation++
				return nil
			})
			if runs != c.wantRuns {
				t.Errorf("fn ran %d times, want %d", runs, c.wantRuns)
			}
			var pgErr *pgconn.PgError
			switch {
			case c.wantErr && (!errors.As(err, &pgErr) || pgErr.Code != "40001"):
				t.Errorf("Update = %v, %v; want the serialization failure", got, err)
			case !c.wantErr && (err != nil || got.Generation != 1):
				t.Errorf("Update = %v, %v; want generation 1", got, err)
			}
			stored, err := s.Get(context.Background(), "orders-db")
			if c.wantErr && !errors.Is(err, store.ErrNotFound) || !c.wantErr && (err != nil || stored.Generation != 1) {
				t.Errorf("Get = %v, %v", stored, err)
			}
		})
	}
}
