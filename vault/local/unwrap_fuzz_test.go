package local_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/local"
)

// FuzzUnwrap feeds Unwrap arbitrary input: it must never panic, refuse
// everything but the one key wrapped for the instance with an error
// wrapping vault.ErrDenied, and return that key intact.
func FuzzUnwrap(f *testing.F) {
	kek, err := local.GenerateKEK()
	if err != nil {
		f.Fatal(err)
	}
	p, err := local.New(f.Context(), filepath.Join(f.TempDir(), "state"), kek)
	if err != nil {
		f.Fatal(err)
	}
	k, err := p.NewKey(f.Context(), "orders-db")
	if err != nil {
		f.Fatal(err)
	}
	f.Add("orders-db", k.Wrapped)
	f.Add("payments-db", k.Wrapped)
	f.Add("orders-db", bytes.Replace(k.Wrapped, []byte("v1"), []byte("v2"), 1))
	f.Add("orders-db", k.Wrapped[:len(k.Wrapped)-1])
	f.Add("orders-db", append(bytes.Clone(k.Wrapped), 'A'))
	f.Add("", []byte("local:v1:"))
	f.Add("orders-db", []byte("vault:v1:AAAA"))
	f.Fuzz(func(t *testing.T, instance string, wrapped []byte) {
		got, err := p.Unwrap(t.Context(), instance, wrapped)
		if err != nil {
			if !errors.Is(err, vault.ErrDenied) {
				t.Fatalf("Unwrap error %v does not wrap vault.ErrDenied", err)
			}
			return
		}
		if instance != "orders-db" || !bytes.Equal(wrapped, k.Wrapped) {
			t.Fatalf("Unwrap accepted %q for %q", wrapped, instance)
		}
		if !bytes.Equal(got, k.Plaintext) {
			t.Fatal("Unwrap returned another key")
		}
	})
}
