package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/reconciler-dev/reconciler/reconciler/config"
	"github.com/reconciler-dev/reconciler/reconciler/rekey"
	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/reconciler/store/postgres"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/hashicorp"
	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
	"github.com/reconciler-dev/reconciler/vault/local"
)

// Recognisable KEKs (44 base64 characters, 32 bytes): neither may ever
// appear in what a command prints.
const (
	canaryOldKEK = "CANARYoldKEKCANARYoldKEKCANARYoldKEK0123456="
	canaryNewKEK = "CANARYnewKEKCANARYnewKEKCANARYnewKEK0123456="
)

// keyFixture is a daemon configuration on a SQLite store and a local
// provider, with RPC keys stored for a few instances, made by the real
// provider and store.
type keyFixture struct {
	dir, config string
	cfg         *config.Config
	plain       map[string][]byte // instance/version: the RPC key
	secrets     []string          // what no output may hold
}

// newKeyFixture writes run.yaml (keyProvider.local.kekFile: kek) and the
// old canary KEK, and stores keys under master key versions 1 and 2: one
// current key each for orders-db and billing-db, and for billing-db a next
// key too; search-db has no RPC encryption.
func newKeyFixture(t *testing.T) *keyFixture {
	t.Helper()
	ctx := t.Context()
	f := &keyFixture{dir: t.TempDir(), plain: map[string][]byte{}, secrets: []string{canaryOldKEK, canaryNewKEK}}
	f.config = filepath.Join(f.dir, "run.yaml")
	write(t, f.config, "source:\n  dir: {path: fleet}\nkeyProvider:\n  local: {kekFile: kek}\n")
	if err := os.WriteFile(filepath.Join(f.dir, "kek"), []byte(canaryOldKEK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{canaryOldKEK, canaryNewKEK} {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil || len(b) != 32 {
			t.Fatalf("canary KEK %s: %d bytes, %v", k, len(b), err)
		}
		f.secrets = append(f.secrets, hex.EncodeToString(b))
	}
	cfg, err := config.Load(f.config)
	if err != nil {
		t.Fatal(err)
	}
	f.cfg = cfg
	kek, err := local.LoadKEK(cfg.KeyProvider.Local.KEKFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := local.New(ctx, cfg.KeyProvider.Local.Dir, kek)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	st, err := sqlite.Open(ctx, cfg.Store.SQLite.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f.storeKey(t, p, st, "orders-db", 1, store.KeyCurrent)
	if err := p.RotateMaster(ctx); err != nil {
		t.Fatal(err)
	}
	f.storeKey(t, p, st, "billing-db", 1, store.KeyCurrent)
	f.storeKey(t, p, st, "billing-db", 2, store.KeyNext)
	if _, err := st.Update(ctx, "search-db", func(r *store.Record) error { r.AppliedRevision = "abc123"; return nil }); err != nil {
		t.Fatal(err)
	}
	return f
}

// storeKey has kw make a key for instance and stores it as version v.
func (f *keyFixture) storeKey(t *testing.T, kw vault.KeyWrapper, st store.Store, instance string, v uint32, s store.KeyState) {
	t.Helper()
	dk, err := kw.NewKey(t.Context(), instance)
	if err != nil {
		t.Fatal(err)
	}
	f.plain[fmt.Sprintf("%s/%d", instance, v)] = dk.Plaintext
	f.secrets = append(f.secrets, base64.StdEncoding.EncodeToString(dk.Plaintext), hex.EncodeToString(dk.Plaintext), string(dk.Wrapped))
	_, err = st.Update(t.Context(), instance, func(r *store.Record) error {
		r.Keys = append(r.Keys, store.WrappedKey{Version: v, Wrapped: dk.Wrapped, MasterVersion: dk.MasterVersion, State: s})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// reconcile runs the command line and checks its outputs hold no secret.
func (f *keyFixture) reconcile(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	code, stdout, stderr := reconcile(t, args...)
	for _, s := range f.secrets {
		if strings.Contains(stdout, s) || strings.Contains(stderr, s) {
			t.Errorf("reconciler %s printed a secret (%.12s...):\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), s, stdout, stderr)
		}
	}
	return code, stdout, stderr
}

// addSecretFile makes the KEK in file one no output may hold.
func (f *keyFixture) addSecretFile(t *testing.T, file string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f.secrets = append(f.secrets, strings.TrimSpace(string(data)))
}

// keys returns every stored key by instance/version, with the wrapped
// bytes replaced by their provider and master key version prefix.
func (f *keyFixture) keys(t *testing.T, st store.Store) map[string]string {
	t.Helper()
	recs, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		for _, k := range r.Keys {
			prefix, _, _ := strings.Cut(string(k.Wrapped), ":v")
			v, _ := rekey.MasterVersion(k.Wrapped)
			got[fmt.Sprintf("%s/%d", r.Name, k.Version)] = fmt.Sprintf("%s:v%d, recorded %d, %s", prefix, v, k.MasterVersion, k.State)
		}
	}
	return got
}

// unwrapsAll checks that kw unwraps every stored key to the key it was.
func (f *keyFixture) unwrapsAll(t *testing.T, st store.Store, kw vault.KeyWrapper) {
	t.Helper()
	recs, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		for _, k := range r.Keys {
			got, err := kw.Unwrap(t.Context(), r.Name, k.Wrapped)
			if err != nil {
				t.Errorf("%s key %d does not unwrap: %v", r.Name, k.Version, err)
				continue
			}
			if !bytes.Equal(got, f.plain[fmt.Sprintf("%s/%d", r.Name, k.Version)]) {
				t.Errorf("%s key %d unwraps to another key", r.Name, k.Version)
			}
			n++
		}
	}
	if n != len(f.plain) {
		t.Errorf("%d keys stored, want %d", n, len(f.plain))
	}
}

func (f *keyFixture) openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(t.Context(), f.cfg.Store.SQLite.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (f *keyFixture) openLocal(t *testing.T, kekFile string) (*local.Provider, error) {
	t.Helper()
	kek, err := local.LoadKEK(kekFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := local.New(t.Context(), f.cfg.KeyProvider.Local.Dir, kek)
	if err == nil {
		t.Cleanup(func() { p.Close() })
	}
	return p, err
}

// TestKEKRotateThenRewrap is the operator's procedure on the local
// provider: rotate the KEK with the reconciler stopped, point the
// configuration at the new KEK, rotate the master key and rewrap.
func TestKEKRotateThenRewrap(t *testing.T) {
	f := newKeyFixture(t)
	oldKEK, newKEK := filepath.Join(f.dir, "kek"), filepath.Join(f.dir, "kek.new")
	if err := os.WriteFile(newKEK, []byte(canaryNewKEK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// A running reconciler (here: an open Provider) stops the rotation.
	p, err := f.openLocal(t, oldKEK)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := f.reconcile(t, "kek", "rotate", "--config", f.config, "--new-kek-file", newKEK)
	if code != 1 || !strings.Contains(stderr, "has the state open; stop it") {
		t.Errorf("kek rotate beside a running reconciler = %d, %q; want 1 and a refusal", code, stderr)
	}
	p.Close()

	code, stdout, stderr := f.reconcile(t, "kek", "rotate", "--config", f.config, "--new-kek-file", newKEK)
	if code != 0 {
		t.Fatalf("kek rotate = %d; stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"sealed under the KEK in " + newKEK,
		"the old KEK (keyProvider.local.kekFile " + oldKEK + ") no longer opens it",
		"Point keyProvider.local.kekFile in " + f.config + " at " + newKEK,
		"Start the reconciler",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("kek rotate does not say %q:\n%s", want, stdout)
		}
	}
	if _, err := f.openLocal(t, oldKEK); !errors.Is(err, local.ErrWrongKEK) {
		t.Errorf("the old KEK after the rotation: %v, want ErrWrongKEK", err)
	}
	p, err = f.openLocal(t, newKEK)
	if err != nil {
		t.Fatalf("the new KEK after the rotation: %v", err)
	}
	f.unwrapsAll(t, f.openStore(t), p)
	p.Close()

	// The operator points the configuration at the new KEK, then rotates
	// the master key and rewraps every stored key.
	edit(t, f.config, "kekFile: kek", "kekFile: kek.new")
	code, stdout, stderr = f.reconcile(t, "keys", "rewrap", "--config", f.config, "--rotate-master")
	if code != 0 {
		t.Fatalf("keys rewrap = %d; stderr:\n%s", code, stderr)
	}
	if diff := cmp.Diff("Rotated the master key of the local key provider.\n3 rewrapped, 0 already current, 0 failed\n", stdout); diff != "" {
		t.Errorf("keys rewrap output (-want +got):\n%s", diff)
	}
	st := f.openStore(t)
	want := map[string]string{
		"billing-db/1": "local:v3, recorded 3, current",
		"billing-db/2": "local:v3, recorded 3, next",
		"orders-db/1":  "local:v3, recorded 3, current",
	}
	if diff := cmp.Diff(want, f.keys(t, st)); diff != "" {
		t.Errorf("stored keys after the rewrap (-want +got):\n%s", diff)
	}
	p, err = f.openLocal(t, newKEK)
	if err != nil {
		t.Fatal(err)
	}
	f.unwrapsAll(t, st, p)
	// With every key under version 3, the older versions can be refused.
	strict, err := local.New(t.Context(), f.cfg.KeyProvider.Local.Dir, mustLoadKEK(t, newKEK), local.WithMinDecryptionVersion(3))
	if err != nil {
		t.Fatal(err)
	}
	f.unwrapsAll(t, st, strict)
	strict.Close()
	p.Close()

	code, stdout, _ = f.reconcile(t, "keys", "rewrap", "--config", f.config)
	if code != 0 || stdout != "0 rewrapped, 3 already current, 0 failed\n" {
		t.Errorf("keys rewrap again = %d, %q; want 0 and every key current", code, stdout)
	}

	// A second KEK rotation, to a KEK the command generates.
	generated := filepath.Join(f.dir, "kek.generated")
	code, stdout, stderr = f.reconcile(t, "kek", "rotate", "--config", f.config, "--new-kek-file", generated, "--generate")
	if code != 0 {
		t.Fatalf("kek rotate --generate = %d; stderr:\n%s", code, stderr)
	}
	f.addSecretFile(t, generated)
	if last := f.secrets[len(f.secrets)-1]; strings.Contains(stdout, last) || strings.Contains(stderr, last) {
		t.Errorf("kek rotate --generate printed the KEK it generated:\n%s%s", stdout, stderr)
	}
	if code, _, stderr := f.reconcile(t, "kek", "rotate", "--config", f.config, "--new-kek-file", generated); code != 0 {
		t.Errorf("kek rotate run again after it succeeded = %d, want 0 (nothing to do); stderr:\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "Wrote a new KEK to "+generated+" (mode 0600).") {
		t.Errorf("kek rotate --generate does not say it wrote the KEK:\n%s", stdout)
	}
	fi, err := os.Stat(generated)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("generated KEK file mode %04o, want 0600", got)
	}
	if _, err := f.openLocal(t, newKEK); !errors.Is(err, local.ErrWrongKEK) {
		t.Errorf("the replaced KEK: %v, want ErrWrongKEK", err)
	}
	p, err = f.openLocal(t, generated)
	if err != nil {
		t.Fatalf("the generated KEK: %v", err)
	}
	f.unwrapsAll(t, st, p)
}

func mustLoadKEK(t *testing.T, file string) local.KEK {
	t.Helper()
	k, err := local.LoadKEK(file)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKEKRotateRefuses(t *testing.T) {
	tests := []struct {
		name    string
		args    func(f *keyFixture) []string
		wantErr string
		// brokenConfig: the configured KEK is not the state's, so the
		// check that it still opens the state is left out.
		brokenConfig bool
	}{
		{
			name:    "no new KEK file",
			args:    func(f *keyFixture) []string { return []string{"--config", f.config} },
			wantErr: "reconciler: kek rotate: --new-kek-file FILE is required\n",
		},
		{
			name: "a new KEK file that does not exist, without --generate",
			args: func(f *keyFixture) []string {
				return []string{"--config", f.config, "--new-kek-file", filepath.Join(f.dir, "missing")}
			},
			wantErr: "(pass --generate to have one written there)",
		},
		{
			name: "the old KEK as the new one",
			args: func(f *keyFixture) []string {
				return []string{"--config", f.config, "--new-kek-file", filepath.Join(f.dir, "kek")}
			},
			wantErr: "the new KEK is the old one",
		},
		{
			name: "a configuration whose KEK does not open the state",
			args: func(f *keyFixture) []string {
				os.Remove(filepath.Join(f.dir, "kek"))
				os.WriteFile(filepath.Join(f.dir, "kek"), []byte(canaryNewKEK), 0o600)
				return []string{"--config", f.config, "--new-kek-file", filepath.Join(f.dir, "kek.new"), "--generate"}
			},
			wantErr:      "the KEK does not match the one the state in",
			brokenConfig: true,
		},
		{
			name: "a new KEK file others can read",
			args: func(f *keyFixture) []string {
				os.WriteFile(filepath.Join(f.dir, "kek.new"), []byte(canaryNewKEK), 0o644)
				return []string{"--config", f.config, "--new-kek-file", filepath.Join(f.dir, "kek.new")}
			},
			wantErr: "is accessible by group or others",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newKeyFixture(t)
			code, stdout, stderr := f.reconcile(t, append([]string{"kek", "rotate"}, tt.args(f)...)...)
			if code != 1 || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("kek rotate = %d, stderr %q; want 1 and %q", code, stderr, tt.wantErr)
			}
			if !tt.brokenConfig {
				if _, err := f.openLocal(t, filepath.Join(f.dir, "kek")); err != nil {
					t.Errorf("the old KEK after a refused rotation: %v", err)
				}
			}
			if stdout != "" && !strings.Contains(stdout, "Wrote a new KEK") {
				t.Errorf("a refused rotation printed:\n%s", stdout)
			}
		})
	}
}

// racingWrapper is the real key provider with the reconciler's writes
// slipped in between a Rewrap and the store's Update, once.
type racingWrapper struct {
	vault.KeyWrapper
	meanwhile func()
}

func (w *racingWrapper) Rewrap(ctx context.Context, instance string, wrapped []byte) ([]byte, error) {
	out, err := w.KeyWrapper.Rewrap(ctx, instance, wrapped)
	if w.meanwhile != nil {
		w.meanwhile()
		w.meanwhile = nil
	}
	return out, err
}

func TestRewrapKeys(t *testing.T) {
	tests := []struct {
		name string
		// meanwhile changes the store between the first Rewrap and its
		// Update, as the reconciler may.
		meanwhile func(t *testing.T, f *keyFixture, st store.Store, p *local.Provider)
		want      rekey.Result
		wantKeys  map[string]string
		wantNames []string // the records left; nil: all three
	}{
		{
			name: "every key moves to the newest version",
			want: rekey.Result{Rewrapped: 3},
			wantKeys: map[string]string{
				"billing-db/1": "local:v3, recorded 3, current",
				"billing-db/2": "local:v3, recorded 3, next",
				"orders-db/1":  "local:v3, recorded 3, current",
			},
		},
		{
			name: "a key the reconciler promoted meanwhile is rewrapped as it is now",
			meanwhile: func(t *testing.T, f *keyFixture, st store.Store, _ *local.Provider) {
				// billing-db is first: its next key becomes current.
				if _, err := st.Update(t.Context(), "billing-db", func(r *store.Record) error { r.PromoteNext(); return nil }); err != nil {
					t.Fatal(err)
				}
			},
			want: rekey.Result{Rewrapped: 2, Gone: 1},
			wantKeys: map[string]string{
				"billing-db/2": "local:v3, recorded 3, current",
				"orders-db/1":  "local:v3, recorded 3, current",
			},
		},
		{
			name: "a key the reconciler rewrote meanwhile is not overwritten",
			meanwhile: func(t *testing.T, f *keyFixture, st store.Store, p *local.Provider) {
				// The reconciler rewraps billing-db's key 1 itself.
				_, err := st.Update(t.Context(), "billing-db", func(r *store.Record) error {
					fresh, err := p.Rewrap(t.Context(), "billing-db", r.Keys[0].Wrapped)
					r.Keys[0].Wrapped, r.Keys[0].MasterVersion = fresh, 3
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			want: rekey.Result{Rewrapped: 2, Current: 1},
			wantKeys: map[string]string{
				"billing-db/1": "local:v3, recorded 3, current",
				"billing-db/2": "local:v3, recorded 3, next",
				"orders-db/1":  "local:v3, recorded 3, current",
			},
		},
		{
			name: "an instance deleted meanwhile is not written again",
			meanwhile: func(t *testing.T, f *keyFixture, st store.Store, _ *local.Provider) {
				if err := st.Delete(t.Context(), "billing-db"); err != nil {
					t.Fatal(err)
				}
			},
			want:      rekey.Result{Rewrapped: 1, Gone: 2},
			wantKeys:  map[string]string{"orders-db/1": "local:v3, recorded 3, current"},
			wantNames: []string{"orders-db", "search-db"},
		},
		{
			name: "a key wrapped for another instance fails, and the walk goes on",
			meanwhile: func(t *testing.T, f *keyFixture, st store.Store, _ *local.Provider) {
				orders, err := st.Get(t.Context(), "orders-db")
				if err != nil {
					t.Fatal(err)
				}
				_, err = st.Update(t.Context(), "billing-db", func(r *store.Record) error {
					r.Keys[1].Wrapped = orders.Keys[0].Wrapped // not billing-db's
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			},
			want: rekey.Result{Rewrapped: 2, Failed: []rekey.Failure{{
				Instance: "billing-db", Version: 2,
				Reason: `rewrap key for "billing-db": the wrapped key does not authenticate: it was wrapped for another instance, by another state directory, or tampered with: denied by the key provider`,
			}}},
			wantKeys: map[string]string{
				"billing-db/1": "local:v3, recorded 3, current",
				"billing-db/2": "local:v1, recorded 2, next",
				"orders-db/1":  "local:v3, recorded 3, current",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newKeyFixture(t)
			st := f.openStore(t)
			p, err := f.openLocal(t, f.cfg.KeyProvider.Local.KEKFile)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.RotateMaster(t.Context()); err != nil {
				t.Fatal(err)
			}
			w := &racingWrapper{KeyWrapper: p}
			if tt.meanwhile != nil {
				w.meanwhile = func() { tt.meanwhile(t, f, st, p) }
			}
			got, err := rekey.Rewrap(t.Context(), st, w)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("rewrapKeys (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantKeys, f.keys(t, st)); diff != "" {
				t.Errorf("stored keys (-want +got):\n%s", diff)
			}
			wantNames := tt.wantNames
			if wantNames == nil {
				wantNames = []string{"billing-db", "orders-db", "search-db"}
			}
			recs, err := st.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, r := range recs {
				names = append(names, r.Name)
			}
			if diff := cmp.Diff(wantNames, names); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRewrapReportsFailures(t *testing.T) {
	f := newKeyFixture(t)
	st := f.openStore(t)
	orders, err := st.Get(t.Context(), "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(t.Context(), "billing-db", func(r *store.Record) error {
		r.Keys[1].Wrapped = orders.Keys[0].Wrapped
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := f.reconcile(t, "keys", "rewrap", "--config", f.config, "--rotate-master")
	if code != 1 {
		t.Errorf("keys rewrap with a bad key exited %d, want 1", code)
	}
	if diff := cmp.Diff("Rotated the master key of the local key provider.\n2 rewrapped, 0 already current, 1 failed\n", stdout); diff != "" {
		t.Errorf("stdout (-want +got):\n%s", diff)
	}
	wantErr := "billing-db: RPC key version 2: rewrap key for \"billing-db\": the wrapped key does not authenticate: it was wrapped for another instance, by another state directory, or tampered with: denied by the key provider\n" +
		"reconciler: keys rewrap: 1 of 3 keys failed\n"
	if diff := cmp.Diff(wantErr, stderr); diff != "" {
		t.Errorf("stderr (-want +got):\n%s", diff)
	}
}

func TestRewrapRefuses(t *testing.T) {
	f := newKeyFixture(t)
	edit(t, f.config, "keyProvider:", "store: {sqlite: {path: elsewhere.db}}\nkeyProvider:")
	code, _, stderr := f.reconcile(t, "keys", "rewrap", "--config", f.config)
	if want := "no state store at " + filepath.Join(f.dir, "elsewhere.db") + " (store.sqlite.path): nothing to rewrap"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("keys rewrap on a missing store = %d, %q; want 1 and %q", code, stderr, want)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "elsewhere.db")); err == nil {
		t.Error("keys rewrap created the missing store")
	}
}

// TestRewrapVaultTransitOnPostgres rotates the transit key of a real Vault
// and rewraps keys stored in a real PostgreSQL.
func TestRewrapVaultTransitOnPostgres(t *testing.T) {
	ctx := t.Context()
	vs := vaultservertest.Dev(t)
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "vault-secret-id")
	boot, err := hashicorp.Bootstrap(ctx, vs.Client(), hashicorp.BootstrapOptions{SecretIDFile: secretFile})
	if err != nil {
		t.Fatal(err)
	}
	dsn := freshDatabase(t)
	f := &keyFixture{dir: dir, config: filepath.Join(dir, "run.yaml"), plain: map[string][]byte{}}
	write(t, f.config, fmt.Sprintf(`source:
  dir: {path: fleet}
keyProvider:
  default: vault
  vault:
    address: %q
    appRole: {roleID: %q, secretIDFile: %q}
store:
  postgres: {dsn: %q}
replicas:
  advertise: {api: "https://127.0.0.1:8443", agents: "https://127.0.0.1:8444"}
`, vs.Addr, boot.RoleID, secretFile, dsn))
	c, err := hashicorp.New(ctx, hashicorp.Config{Address: vs.Addr, AppRole: &hashicorp.AppRole{RoleID: boot.RoleID, SecretIDFile: secretFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f.storeKey(t, c, st, "orders-db", 1, store.KeyCurrent)
	f.storeKey(t, c, st, "billing-db", 1, store.KeyCurrent)

	code, stdout, stderr := f.reconcile(t, "keys", "rewrap", "--config", f.config, "--rotate-master")
	if code != 0 {
		t.Fatalf("keys rewrap = %d; stderr:\n%s", code, stderr)
	}
	if diff := cmp.Diff("Rotated the master key of the vault key provider.\n2 rewrapped, 0 already current, 0 failed\n", stdout); diff != "" {
		t.Errorf("keys rewrap output (-want +got):\n%s", diff)
	}
	want := map[string]string{
		"billing-db/1": "vault:v2, recorded 2, current",
		"orders-db/1":  "vault:v2, recorded 2, current",
	}
	if diff := cmp.Diff(want, f.keys(t, st)); diff != "" {
		t.Errorf("stored keys after the rewrap (-want +got):\n%s", diff)
	}
	f.unwrapsAll(t, st, c)
}
