package postgres

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/reconciler/store"
)

func TestSaveWritesOnlyWhatChanged(t *testing.T) {
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	stored := func() *store.Record {
		r := benchRecord("orders-db")
		if err := store.Prepare(r, r.Name, at); err != nil {
			t.Fatal(err)
		}
		return r
	}
	cases := []struct {
		name string
		old  *store.Record // nil: a new record
		fn   func(r *store.Record)
		want []string
	}{
		{"a new record writes every table, deletes nothing", nil, func(*store.Record) {},
			[]string{"INSERT INTO instances", "INSERT INTO rpc_keys", "INSERT INTO certificates", "INSERT INTO history"}},
		{"a new empty record writes its row alone", nil, func(r *store.Record) { *r = store.Record{Name: r.Name} },
			[]string{"INSERT INTO instances"}},
		{"watermarks and status write the row alone", stored(), func(r *store.Record) {
			r.Watermarks.Sent++
			r.Status.Message = "renewed"
		}, []string{"INSERT INTO instances"}},
		{"a promoted key rewrites the keys", stored(), func(r *store.Record) { r.PromoteNext() },
			[]string{"INSERT INTO instances", "DELETE FROM rpc_keys", "INSERT INTO rpc_keys"}},
		{"a key rewrapped under a new master rewrites the keys", stored(), func(r *store.Record) { r.Keys[0].MasterVersion++ },
			[]string{"INSERT INTO instances", "DELETE FROM rpc_keys", "INSERT INTO rpc_keys"}},
		{"a key's new wrapped bytes rewrite the keys", stored(), func(r *store.Record) { r.Keys[1].Wrapped = []byte("other") },
			[]string{"INSERT INTO instances", "DELETE FROM rpc_keys", "INSERT INTO rpc_keys"}},
		{"keys dropped are deleted", stored(), func(r *store.Record) { r.Keys = nil },
			[]string{"INSERT INTO instances", "DELETE FROM rpc_keys"}},
		{"an installed certificate is rewritten", stored(), func(r *store.Record) { r.Certificate.State = store.CertRevoked },
			[]string{"INSERT INTO instances", "DELETE FROM certificates", "INSERT INTO certificates"}},
		{"a certificate's new expiry is rewritten", stored(), func(r *store.Record) { r.Certificate.NotAfter = at },
			[]string{"INSERT INTO instances", "DELETE FROM certificates", "INSERT INTO certificates"}},
		{"a cleared certificate is deleted", stored(), func(r *store.Record) { r.Certificate = nil },
			[]string{"INSERT INTO instances", "DELETE FROM certificates"}},
		{"an applied revision rewrites the history", stored(), func(r *store.Record) { r.AddHistory(store.Applied{Revision: "new"}) },
			[]string{"INSERT INTO instances", "DELETE FROM history", "INSERT INTO history"}},
		{"a history entry's new time rewrites the history", stored(), func(r *store.Record) { r.History[3].At = at.Add(time.Minute) },
			[]string{"INSERT INTO instances", "DELETE FROM history", "INSERT INTO history"}},
		{"times in another zone are the same times", stored(), func(r *store.Record) {
			r.Certificate.NotAfter = r.Certificate.NotAfter.In(time.FixedZone("UTC+2", 2*60*60))
			r.History[0].At = r.History[0].At.Local()
		}, []string{"INSERT INTO instances"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := benchRecord("orders-db")
			if c.old != nil {
				r = c.old.Clone()
			}
			c.fn(r)
			if err := store.Prepare(r, r.Name, at); err != nil {
				t.Fatal(err)
			}
			b := &pgx.Batch{}
			if err := queueSave(b, r, c.old); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, q := range b.QueuedQueries {
				got = append(got, strings.Join(strings.Fields(q.SQL)[:3], " "))
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("statements (-want +got):\n%s", diff)
			}
		})
	}
}
