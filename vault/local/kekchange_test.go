package local_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/local"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

// stateFiles is what a settled state directory holds.
var stateFiles = []string{"ca-key.enc", "ca.pem", "in-use", "keyring.enc", "lock", "revocations.json"}

// kekFixture is a state directory with a CA, keys wrapped under two master
// key versions and a revocation, made under old; no Provider holds it open.
type kekFixture struct {
	dir      string
	old, new local.KEK
	ca       []byte
	keys     []*vault.DataKey
}

func newKEKFixture(t *testing.T) *kekFixture {
	t.Helper()
	ctx := t.Context()
	p, dir, old := newProvider(t)
	f := &kekFixture{dir: dir, old: old, new: newKEK(t)}
	var err error
	if f.ca, err = p.CAChain(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := p.Issue(ctx, vaulttest.DefaultRequest())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(ctx, c.Serial); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		k, err := p.NewKey(ctx, fmt.Sprintf("db-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		f.keys = append(f.keys, k)
		if err := p.RotateMaster(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	return f
}

// opens checks that kek opens the directory with everything made before:
// the CA (which still issues), every wrapped key, and nothing but the
// state files, each mode 0600.
func (f *kekFixture) opens(t *testing.T, kek local.KEK) {
	t.Helper()
	ctx := t.Context()
	p, err := local.New(ctx, f.dir, kek)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer p.Close()
	ca, err := p.CAChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(f.ca), string(ca)); diff != "" {
		t.Errorf("CA (-want +got):\n%s", diff)
	}
	c, err := p.Issue(ctx, vaulttest.DefaultRequest())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := vault.ParseLeaf(c.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(f.ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "orders-db.db.internal"}); err != nil {
		t.Errorf("a certificate issued now does not verify against the CA: %v", err)
	}
	for i, k := range f.keys {
		got, err := p.Unwrap(ctx, fmt.Sprintf("db-%d", i), k.Wrapped)
		if err != nil {
			t.Errorf("unwrap key %d: %v", i, err)
		} else if !bytes.Equal(got, k.Plaintext) {
			t.Errorf("key %d unwraps to another key", i)
		}
	}
	if diff := cmp.Diff(stateFiles, listState(t, f.dir)); diff != "" {
		t.Errorf("files in the state directory (-want +got):\n%s", diff)
	}
}

// refuses checks that kek does not open the directory.
func (f *kekFixture) refuses(t *testing.T, kek local.KEK) {
	t.Helper()
	p, err := local.New(t.Context(), f.dir, kek)
	if err == nil {
		p.Close()
	}
	if !errors.Is(err, local.ErrWrongKEK) {
		t.Errorf("New = %v, want ErrWrongKEK", err)
	}
}

// listState returns the names in dir, checking that each is mode 0600.
func listState(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", e.Name(), got)
		}
	}
	return names
}

// snapshot returns every file of dir with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(data)
	}
	return files
}

func TestChangeKEK(t *testing.T) {
	f := newKEKFixture(t)
	if err := local.ChangeKEK(t.Context(), f.dir, f.old, f.new); err != nil {
		t.Fatalf("ChangeKEK: %v", err)
	}
	f.opens(t, f.new)
	f.refuses(t, f.old)

	t.Run("a second run changes nothing", func(t *testing.T) {
		before := snapshot(t, f.dir)
		if err := local.ChangeKEK(t.Context(), f.dir, f.old, f.new); err != nil {
			t.Fatalf("ChangeKEK again: %v", err)
		}
		if diff := cmp.Diff(before, snapshot(t, f.dir)); diff != "" {
			t.Errorf("state directory (-before +after):\n%s", diff)
		}
	})
	t.Run("master key rotation goes on under the new KEK", func(t *testing.T) {
		p, err := local.New(t.Context(), f.dir, f.new)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if err := p.RotateMaster(t.Context()); err != nil {
			t.Fatal(err)
		}
		k, err := p.NewKey(t.Context(), "db-0")
		if err != nil {
			t.Fatal(err)
		}
		if k.MasterVersion != 4 {
			t.Errorf("master version %d, want 4", k.MasterVersion)
		}
	})
}

func TestChangeKEKRefuses(t *testing.T) {
	tests := []struct {
		name    string
		change  func(t *testing.T, f *kekFixture) error
		wantErr error  // nil: any error
		wantMsg string // in the error
	}{
		{
			name: "a wrong old KEK",
			change: func(t *testing.T, f *kekFixture) error {
				return local.ChangeKEK(t.Context(), f.dir, newKEK(t), f.new)
			},
			wantErr: local.ErrWrongKEK,
			wantMsg: "the KEK does not match the one the state in DIR was created with",
		},
		{
			name: "while a Provider has the directory open",
			change: func(t *testing.T, f *kekFixture) error {
				p, err := local.New(t.Context(), f.dir, f.old)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				return local.ChangeKEK(t.Context(), f.dir, f.old, f.new)
			},
			wantErr: local.ErrInUse,
			wantMsg: "another process (a running reconciler?) has the state open; stop it",
		},
		{
			name: "the same KEK",
			change: func(t *testing.T, f *kekFixture) error {
				return local.ChangeKEK(t.Context(), f.dir, f.old, f.old)
			},
			wantMsg: "the new KEK is the old one",
		},
		{
			name: "no new KEK",
			change: func(t *testing.T, f *kekFixture) error {
				return local.ChangeKEK(t.Context(), f.dir, f.old, local.KEK{})
			},
			wantMsg: "the new KEK: no KEK given",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newKEKFixture(t)
			before := snapshot(t, f.dir)
			err := tt.change(t, f)
			if err == nil {
				t.Fatal("ChangeKEK succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("ChangeKEK = %v, want an error wrapping %v", err, tt.wantErr)
			}
			if msg := strings.ReplaceAll(tt.wantMsg, "DIR", f.dir); !strings.Contains(err.Error(), msg) {
				t.Errorf("error %q does not say %q", err, msg)
			}
			if diff := cmp.Diff(before, snapshot(t, f.dir)); diff != "" {
				t.Errorf("state directory (-before +after):\n%s", diff)
			}
			f.opens(t, f.old)
		})
	}

	t.Run("a directory without state, which is not created", func(t *testing.T) {
		for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "missing")} {
			err := local.ChangeKEK(t.Context(), dir, newKEK(t), newKEK(t))
			if err == nil {
				t.Fatalf("ChangeKEK on %s succeeded", dir)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("ChangeKEK on a directory without state left %d files in it", len(entries))
			}
		}
	})
}

// crash is what a test hook panics with to stand for a crash.
type crash struct{}

// crashAt makes the KEK change crash right after step.
func crashAt(t *testing.T, step string) {
	local.SetKEKChangeHook(t, func(s string) error {
		if s == step {
			panic(crash{})
		}
		return nil
	})
}

// crashes runs do, which must crash.
func crashes(t *testing.T, do func() error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(crash); !ok {
				panic(r)
			}
			local.SetKEKChangeHook(t, nil)
		}
	}()
	err := do()
	t.Fatalf("did not crash, returned %v", err)
}

// kekChangeSteps are the steps of a KEK change, in order.
var kekChangeSteps = []string{
	"wrote ca-key.enc.prev", "wrote ca-key.enc.next",
	"wrote keyring.enc.prev", "wrote keyring.enc.next",
	"committed",
	"copied ca-key.enc.next", "copied keyring.enc.next",
	"ended",
	"removed copies",
}

func TestChangeKEKSteps(t *testing.T) {
	f := newKEKFixture(t)
	var got []string
	local.SetKEKChangeHook(t, func(s string) error { got = append(got, s); return nil })
	if err := local.ChangeKEK(t.Context(), f.dir, f.old, f.new); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kekChangeSteps, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
}

// TestChangeKEKSurvivesACrash crashes a KEK change after each step and
// opens the directory with each KEK, as a restarted reconciler would:
// before the commit only the old KEK opens it; from the commit to the end
// of the change both do, the new one finishing the change and the old one
// rolling it back; after that only the new one. Whatever the outcome, the
// directory is then settled, holds everything it held, and the change can
// be run (again) to completion.
func TestChangeKEKSurvivesACrash(t *testing.T) {
	committed := slices.Index(kekChangeSteps, "committed")
	ended := slices.Index(kekChangeSteps, "ended")
	for i, step := range kekChangeSteps {
		for _, reopen := range []string{"old", "new"} {
			var under string // the KEK that opens the directory after the crash, as reopen tries it
			switch {
			case i < committed:
				under = "old"
			case i < ended:
				under = reopen
			default:
				under = "new"
			}
			t.Run(fmt.Sprintf("after %s, the %s KEK, sealed under the %s", step, reopen, under), func(t *testing.T) {
				ctx := t.Context()
				f := newKEKFixture(t)
				kek := map[string]local.KEK{"old": f.old, "new": f.new}
				crashAt(t, step)
				crashes(t, func() error { return local.ChangeKEK(ctx, f.dir, f.old, f.new) })

				if i >= committed && i < ended {
					_, err := local.New(ctx, f.dir, newKEK(t))
					if !errors.Is(err, local.ErrWrongKEK) || !strings.Contains(err.Error(), "was interrupted") {
						t.Errorf("New with a third KEK during a committed change = %v, want ErrWrongKEK saying it was interrupted", err)
					}
				}
				if under != reopen {
					f.refuses(t, kek[reopen])
				}
				f.opens(t, kek[under])
				other := map[string]string{"old": "new", "new": "old"}[under]
				f.refuses(t, kek[other])
				if under == "old" {
					if err := local.ChangeKEK(ctx, f.dir, f.old, f.new); err != nil {
						t.Fatalf("ChangeKEK after the rollback: %v", err)
					}
					f.opens(t, f.new)
					f.refuses(t, f.old)
				}
			})
		}
	}

	t.Run("crashed recoveries in both directions still settle", func(t *testing.T) {
		ctx := t.Context()
		f := newKEKFixture(t)
		crashAt(t, "copied ca-key.enc.next") // ca-key.enc new, keyring.enc old
		crashes(t, func() error { return local.ChangeKEK(ctx, f.dir, f.old, f.new) })
		crashAt(t, "copied ca-key.enc.prev") // the rollback crashes too
		crashes(t, func() error { _, err := local.New(ctx, f.dir, f.old); return err })
		crashAt(t, "copied keyring.enc.next") // and so does finishing
		crashes(t, func() error { _, err := local.New(ctx, f.dir, f.new); return err })
		f.opens(t, f.old) // rolls back after all
		f.refuses(t, f.new)
	})
}

func TestChangeKEKErrors(t *testing.T) {
	t.Run("an error before the commit leaves the state untouched", func(t *testing.T) {
		f := newKEKFixture(t)
		before := snapshot(t, f.dir)
		failed := errors.New("disk full")
		local.SetKEKChangeHook(t, func(s string) error {
			if s == "wrote keyring.enc.prev" {
				return failed
			}
			return nil
		})
		err := local.ChangeKEK(t.Context(), f.dir, f.old, f.new)
		if !errors.Is(err, failed) {
			t.Fatalf("ChangeKEK = %v, want the step's error", err)
		}
		if diff := cmp.Diff(before, snapshot(t, f.dir)); diff != "" {
			t.Errorf("state directory (-before +after):\n%s", diff)
		}
		local.SetKEKChangeHook(t, nil)
		f.opens(t, f.old)
	})
	t.Run("an error after the commit says how the change ends", func(t *testing.T) {
		f := newKEKFixture(t)
		failed := errors.New("disk full")
		local.SetKEKChangeHook(t, func(s string) error {
			if s == "copied ca-key.enc.next" {
				return failed
			}
			return nil
		})
		err := local.ChangeKEK(t.Context(), f.dir, f.old, f.new)
		if !errors.Is(err, failed) {
			t.Fatalf("ChangeKEK = %v, want the step's error", err)
		}
		if want := "the change is committed but unfinished: opening the state with the new KEK finishes it, with the old KEK rolls it back"; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		local.SetKEKChangeHook(t, nil)
		f.opens(t, f.new)
		f.refuses(t, f.old)
	})
	t.Run("copies a crash left beside the state are removed", func(t *testing.T) {
		f := newKEKFixture(t)
		stray := filepath.Join(f.dir, ".keyring.enc.next.12345.tmp")
		if err := os.WriteFile(stray, []byte("half a sealed file"), 0o600); err != nil {
			t.Fatal(err)
		}
		f.opens(t, f.old)
	})
}

// TestChangeKEKLogsNoKey runs a change with a logger and looks for the
// KEKs in what it logged.
func TestChangeKEKLogsNoKey(t *testing.T) {
	f := newKEKFixture(t)
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := local.ChangeKEK(t.Context(), f.dir, f.old, f.new, local.WithLogger(log)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "changed the KEK") {
		t.Errorf("the change was not logged: %q", buf.String())
	}
	for _, k := range []local.KEK{f.old, f.new} {
		b := local.KEKBytes(k)
		for _, form := range []string{string(b), hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b)} {
			if strings.Contains(buf.String(), form) {
				t.Errorf("the log holds a KEK: %q", buf.String())
			}
		}
	}
}
