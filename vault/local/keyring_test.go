package local_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/local"
)

func TestWrappedKeys(t *testing.T) {
	ctx := t.Context()
	p, _, _ := newProvider(t)
	k, err := p.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(k.Wrapped), "local:v1:") || k.MasterVersion != 1 {
		t.Errorf("wrapped key %q (version %d), want local:v1:...", k.Wrapped, k.MasterVersion)
	}
	if err := p.RotateMaster(ctx); err != nil {
		t.Fatal(err)
	}
	re, err := p.Rewrap(ctx, "orders-db", k.Wrapped)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(re), "local:v2:") {
		t.Errorf("rewrapped key %q, want local:v2:...", re)
	}

	other, _, _ := newProvider(t)
	v3 := strings.Replace(string(re), "local:v2:", "local:v3:", 1)
	tests := []struct {
		name     string
		p        *local.Provider
		instance string
		wrapped  string
		want     string
	}{
		{"another instance", p, "payments-db", string(k.Wrapped), "wrapped for another instance"},
		{"another state directory", other, "orders-db", string(k.Wrapped), "by another state directory"},
		{"the version changed", p, "orders-db", strings.Replace(string(re), "local:v2:", "local:v1:", 1), "does not authenticate"},
		{"a version that does not exist", p, "orders-db", v3, "master key version 3 does not exist"},
		{"another provider's format", p, "orders-db", "vault:v1:abc", "not a key wrapped by the local provider"},
		{"a leading zero", p, "orders-db", strings.Replace(string(re), "local:v2:", "local:v02:", 1), "bad master key version"},
		{"no separator", p, "orders-db", "local:v1", "no version separator"},
		{"short", p, "orders-db", string(k.Wrapped[:40]), "characters of ciphertext"},
		{"a newline inside", p, "orders-db", string(k.Wrapped[:40]) + "\n" + string(k.Wrapped[41:]), "bad base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.p.Unwrap(ctx, tt.instance, []byte(tt.wrapped))
			if !errors.Is(err, vault.ErrDenied) {
				t.Fatalf("Unwrap = %v, want an error wrapping vault.ErrDenied", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
		})
	}
}

func TestMinDecryptionVersion(t *testing.T) {
	ctx := t.Context()
	p, dir, kek := newProvider(t)
	old, err := p.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RotateMaster(ctx); err != nil {
		t.Fatal(err)
	}
	rewrapped, err := p.Rewrap(ctx, "orders-db", old.Wrapped)
	if err != nil {
		t.Fatal(err)
	}

	strict, err := local.New(ctx, dir, kek, local.WithMinDecryptionVersion(2))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		op      func() error
		wantErr string // empty: succeeds
	}{
		{"a key wrapped under version 1 is refused", func() error {
			_, err := strict.Unwrap(ctx, "orders-db", old.Wrapped)
			return err
		}, "master key version 1, below the minimum decryption version 2"},
		{"it cannot be rewrapped either", func() error {
			_, err := strict.Rewrap(ctx, "orders-db", old.Wrapped)
			return err
		}, "below the minimum decryption version 2"},
		{"the rewrapped key unwraps", func() error {
			got, err := strict.Unwrap(ctx, "orders-db", rewrapped)
			if err == nil && !bytes.Equal(got, old.Plaintext) {
				return errors.New("another key")
			}
			return err
		}, ""},
		{"new keys unwrap", func() error {
			k, err := strict.NewKey(ctx, "orders-db")
			if err != nil {
				return err
			}
			_, err = strict.Unwrap(ctx, "orders-db", k.Wrapped)
			return err
		}, ""},
		{"the Provider without a minimum still unwraps version 1", func() error {
			_, err := p.Unwrap(ctx, "orders-db", old.Wrapped)
			return err
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, vault.ErrDenied) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one wrapping vault.ErrDenied saying %q", err, tt.wantErr)
			}
		})
	}

	t.Run("a minimum above the newest version is refused", func(t *testing.T) {
		_, err := local.New(ctx, dir, kek, local.WithMinDecryptionVersion(3))
		if err == nil || !strings.Contains(err.Error(), "minimum decryption version 3 is above the newest master key version 2") {
			t.Errorf("New = %v", err)
		}
	})
}
