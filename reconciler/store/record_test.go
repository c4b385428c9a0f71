package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

// canary stands for wrapped key bytes: it must show up nowhere.
const canary = "CANARY-wrapped-7f3e"

func canaryRecord() *store.Record {
	return &store.Record{
		Name:       "orders-db",
		Generation: 3,
		Keys: []store.WrappedKey{
			{Version: 1, Wrapped: []byte(canary), MasterVersion: 2, State: store.KeyCurrent},
			{Version: 2, Wrapped: []byte(canary), MasterVersion: 2, State: store.KeyNext},
		},
		Certificate: &store.Certificate{Serial: "01:02", State: store.CertInstalled},
	}
}

func TestWrappedBytesStayOutOfLogs(t *testing.T) {
	r := canaryRecord()
	k := r.Keys[0]
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%q", "%d"} {
		out = append(out, fmt.Sprintf(verb, k), fmt.Sprintf(verb, &k), fmt.Sprintf(verb, r), fmt.Sprintf(verb, *r), fmt.Sprintf(verb, r.Keys))
	}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var b bytes.Buffer
		slog.New(h(&b)).Info("state", "record", r, "key", k, "keys", r.Keys)
		out = append(out, b.String())
	}
	hexCanary := fmt.Sprintf("%x", canary)
	for _, o := range out {
		if strings.Contains(o, canary) || strings.Contains(strings.ToLower(o), hexCanary) || strings.Contains(o, "Q0FOQVJZ") {
			t.Errorf("wrapped bytes printed: %s", o)
		}
	}
	if got, want := k.String(), "store.WrappedKey{version: 1, state: current, masterVersion: 2}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestPrepare(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.FixedZone("UTC+2", 7200))
	key := func(v uint32, s store.KeyState) store.WrappedKey {
		return store.WrappedKey{Version: v, Wrapped: []byte{byte(v)}, MasterVersion: 1, State: s}
	}
	var long []store.Applied
	for i := range 12 {
		long = append(long, store.Applied{Revision: fmt.Sprint(i)})
	}
	cases := []struct {
		name    string
		in      store.Record
		want    store.Record
		invalid bool
	}{
		{
			name: "sorts keys, trims history, drops empty slices, stamps UTC microseconds",
			in: store.Record{Name: "a", Keys: []store.WrappedKey{key(3, store.KeyNext), key(2, store.KeyCurrent)},
				History: long, AppliedAt: now},
			want: store.Record{Name: "a", Keys: []store.WrappedKey{key(2, store.KeyCurrent), key(3, store.KeyNext)},
				History: long[:store.MaxHistory], AppliedAt: now.Truncate(time.Microsecond), UpdatedAt: now.Truncate(time.Microsecond)},
		},
		{
			name: "empty slices become nil",
			in:   store.Record{Name: "a", Keys: []store.WrappedKey{}, History: []store.Applied{}},
			want: store.Record{Name: "a", UpdatedAt: now.Truncate(time.Microsecond)},
		},
		{name: "a record renamed by fn is refused", in: store.Record{Name: "b"}, invalid: true},
		{name: "two current keys are refused", in: store.Record{Name: "a", Keys: []store.WrappedKey{key(1, store.KeyCurrent), key(2, store.KeyCurrent)}}, invalid: true},
		{name: "a key of no state is refused", in: store.Record{Name: "a", Keys: []store.WrappedKey{key(1, "")}}, invalid: true},
		{name: "a certificate of no state is refused", in: store.Record{Name: "a", Certificate: &store.Certificate{Serial: "01"}}, invalid: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := c.in
			err := store.Prepare(&got, "a", now)
			if c.invalid {
				if !errors.Is(err, store.ErrInvalid) {
					t.Errorf("Prepare = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Prepare (-want +got):\n%s", diff)
			}
			if got.UpdatedAt.Location() != time.UTC {
				t.Errorf("UpdatedAt in %s, want UTC", got.UpdatedAt.Location())
			}
		})
	}
}

func TestAddHistoryKeepsTheNewest(t *testing.T) {
	var r store.Record
	for i := range 15 {
		r.AddHistory(store.Applied{Revision: fmt.Sprint(i), Generation: uint64(i)})
	}
	var want []store.Applied
	for i := 14; i > 4; i-- {
		want = append(want, store.Applied{Revision: fmt.Sprint(i), Generation: uint64(i)})
	}
	if diff := cmp.Diff(want, r.History); diff != "" {
		t.Errorf("History (-want +got):\n%s", diff)
	}
}

func ExampleRecord_PromoteNext() {
	r := &store.Record{Name: "orders-db", Keys: []store.WrappedKey{
		{Version: 1, Wrapped: []byte("w1"), MasterVersion: 1, State: store.KeyCurrent},
		{Version: 2, Wrapped: []byte("w2"), MasterVersion: 1, State: store.KeyNext},
	}}
	// The agent acknowledged key 2: in the same Update, it becomes current
	// and key 1 is gone.
	fmt.Println(r.PromoteNext(), r.Keys)
	fmt.Println(r.PromoteNext())
	// Output:
	// true [store.WrappedKey{version: 2, state: current, masterVersion: 1}]
	// false
}
