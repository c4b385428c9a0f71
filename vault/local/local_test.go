package local_test

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/local"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

// newProvider opens a provider on a fresh state directory.
func newProvider(t *testing.T, opts ...local.Option) (*local.Provider, string, local.KEK) {
	t.Helper()
	kek := newKEK(t)
	dir := filepath.Join(t.TempDir(), "state")
	p, err := local.New(t.Context(), dir, kek, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, dir, kek
}

func newKEK(t *testing.T) local.KEK {
	t.Helper()
	k, err := local.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestContract(t *testing.T) {
	p, _, _ := newProvider(t)
	t.Run("issuer", func(t *testing.T) {
		vaulttest.TestIssuer(t, p, vaulttest.IssuerOptions{CanRevoke: true, CRL: p.CRL})
	})
	t.Run("key wrapper", func(t *testing.T) {
		vaulttest.TestKeyWrapper(t, p)
	})
}

func TestStateSurvivesRestart(t *testing.T) {
	ctx := t.Context()
	first, dir, kek := newProvider(t)
	wantCA, err := first.CAChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k, err := first.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}

	second, err := local.New(ctx, dir, kek)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	gotCA, err := second.CAChain(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(wantCA), string(gotCA)); diff != "" {
		t.Errorf("CA after restart (-want +got):\n%s", diff)
	}
	got, err := second.Unwrap(ctx, "orders-db", k.Wrapped)
	if err != nil {
		t.Fatalf("unwrap after restart: %v", err)
	}
	if !bytes.Equal(got, k.Plaintext) {
		t.Error("unwrap after restart returned another key")
	}
	c, err := second.Issue(ctx, vaulttest.DefaultRequest())
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := vault.ParseLeaf(c.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(wantCA)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "orders-db.db.internal"}); err != nil {
		t.Errorf("a certificate issued after restart does not verify against the first CA: %v", err)
	}

	// A rotation by one Provider reaches another sharing the directory.
	if err := first.RotateMaster(ctx); err != nil {
		t.Fatal(err)
	}
	k2, err := first.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := second.Unwrap(ctx, "orders-db", k2.Wrapped); err != nil || !bytes.Equal(got, k2.Plaintext) {
		t.Errorf("a key wrapped under a version another Provider made does not unwrap: %v", err)
	}
	if err := second.RotateMaster(ctx); err != nil {
		t.Fatal(err)
	}
	k3, err := second.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if k3.MasterVersion != 3 {
		t.Errorf("master version %d after two rotations by two Providers, want 3", k3.MasterVersion)
	}
}

func TestWrongKEKIsReported(t *testing.T) {
	_, dir, _ := newProvider(t)
	_, err := local.New(t.Context(), dir, newKEK(t))
	if !errors.Is(err, local.ErrWrongKEK) {
		t.Fatalf("New with another KEK = %v, want ErrWrongKEK", err)
	}
	want := "the KEK does not match the one the state in " + dir + " was created with"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestNothingSecretAtRest(t *testing.T) {
	ctx := t.Context()
	p, dir, kek := newProvider(t)
	var secrets [][]byte
	for _, kt := range []string{vault.KeyTypeEC, vault.KeyTypeRSA} {
		req := vaulttest.DefaultRequest()
		req.KeyType = kt
		c, err := p.Issue(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Revoke(ctx, c.Serial); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, c.Key)
	}
	for range 3 {
		k, err := p.NewKey(ctx, "orders-db")
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, k.Plaintext)
		if err := p.RotateMaster(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.CRL(ctx); err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, local.CAKeyForms(p)...)
	secrets = append(secrets, local.MasterKeys(p)...)
	secrets = append(secrets, local.KEKBytes(kek))

	var needles []string
	for _, s := range secrets {
		needles = append(needles, string(s), hex.EncodeToString(s), strings.ToUpper(hex.EncodeToString(s)),
			base64.StdEncoding.EncodeToString(s), base64.RawStdEncoding.EncodeToString(s), base64.RawURLEncoding.EncodeToString(s))
	}

	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("state directory mode %04o, want 0700", got)
	}
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
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range needles {
			if strings.Contains(string(data), n) {
				t.Errorf("%s holds secret %d in clear", e.Name(), i/6)
			}
		}
	}
	want := []string{"ca-key.enc", "ca.pem", "in-use", "keyring.enc", "lock", "revocations.json"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("files in the state directory (-want +got):\n%s", diff)
	}
}

func TestDamagedStateIsRefused(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, dir string)
		wantErr error  // nil: New succeeds
		wantMsg string // in the error
	}{
		{
			name:    "a flipped bit in ca-key.enc",
			damage:  func(t *testing.T, dir string) { flipBody(t, filepath.Join(dir, "ca-key.enc")) },
			wantErr: local.ErrDamaged,
			wantMsg: "ca-key.enc in DIR: it is corrupted or was tampered with",
		},
		{
			name:    "a flipped bit in keyring.enc",
			damage:  func(t *testing.T, dir string) { flipBody(t, filepath.Join(dir, "keyring.enc")) },
			wantErr: local.ErrDamaged,
			wantMsg: "keyring.enc in DIR: it is corrupted or was tampered with",
		},
		{
			name:    "truncated ca-key.enc",
			damage:  func(t *testing.T, dir string) { truncate(t, filepath.Join(dir, "ca-key.enc")) },
			wantErr: local.ErrDamaged,
			wantMsg: "ca-key.enc",
		},
		{
			name:    "garbage keyring.enc",
			damage:  func(t *testing.T, dir string) { write(t, filepath.Join(dir, "keyring.enc"), "not a keyring") },
			wantErr: local.ErrDamaged,
			wantMsg: "keyring.enc in DIR: not a sealed file",
		},
		{
			name: "the keyring passed off as the CA key",
			damage: func(t *testing.T, dir string) {
				data, err := os.ReadFile(filepath.Join(dir, "keyring.enc"))
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "ca-key.enc"), string(data))
			},
			wantErr: local.ErrDamaged,
			wantMsg: `the file holds a "keyring", want a "ca-key"`,
		},
		{
			name: "a changed format header",
			damage: func(t *testing.T, dir string) {
				replaceIn(t, filepath.Join(dir, "keyring.enc"), "Format: 1", "Format: 2")
			},
			wantErr: local.ErrDamaged,
			wantMsg: `sealed file format "2"`,
		},
		{
			name:    "keyring.enc removed",
			damage:  func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "keyring.enc")) },
			wantErr: local.ErrDamaged,
			wantMsg: "keyring.enc is missing from DIR",
		},
		{
			name:    "ca-key.enc removed",
			damage:  func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "ca-key.enc")) },
			wantErr: local.ErrDamaged,
			wantMsg: "ca-key.enc is missing from DIR",
		},
		{
			name: "ca.pem replaced by another CA",
			damage: func(t *testing.T, dir string) {
				other, _, _ := newProvider(t)
				chain, err := other.CAChain(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "ca.pem"), string(chain))
			},
			wantErr: local.ErrDamaged,
			wantMsg: "ca.pem in DIR is not the certificate sealed in ca-key.enc",
		},
		{
			name:   "ca.pem removed is rewritten",
			damage: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "ca.pem")) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, dir, kek := newProvider(t)
			wantCA, err := p.CAChain(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, dir)
			q, err := local.New(t.Context(), dir, kek)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				got, err := q.CAChain(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(wantCA), string(got)); diff != "" {
					t.Errorf("CA (-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New = %v, want an error wrapping %v", err, tt.wantErr)
			}
			if msg := strings.ReplaceAll(tt.wantMsg, "DIR", dir); !strings.Contains(err.Error(), msg) {
				t.Errorf("error %q does not say %q", err, msg)
			}
		})
	}

	t.Run("garbage revocations.json stops Revoke and CRL", func(t *testing.T) {
		p, dir, _ := newProvider(t)
		write(t, filepath.Join(dir, "revocations.json"), "{")
		if err := p.Revoke(t.Context(), "01:02"); !errors.Is(err, local.ErrDamaged) {
			t.Errorf("Revoke = %v, want ErrDamaged", err)
		}
		if _, err := p.CRL(t.Context()); !errors.Is(err, local.ErrDamaged) {
			t.Errorf("CRL = %v, want ErrDamaged", err)
		}
	})
}

// flipBody flips a bit in the body of a sealed PEM file, headers kept.
func flipBody(t *testing.T, name string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s is not PEM", name)
	}
	block.Bytes[len(block.Bytes)/2] ^= 0x01
	write(t, name, string(pem.EncodeToMemory(block)))
}

func truncate(t *testing.T, name string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	write(t, name, string(data[:len(data)/2]))
}

func replaceIn(t *testing.T, name, old, new string) {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s does not hold %q", name, old)
	}
	write(t, name, strings.Replace(string(data), old, new, 1))
}

func write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, name string) {
	t.Helper()
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentNewCreatesOneCA(t *testing.T) {
	kek := newKEK(t)
	dir := filepath.Join(t.TempDir(), "state")
	const n = 16
	providers := make([]*local.Provider, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { providers[i], errs[i] = local.New(t.Context(), dir, kek) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("New: %v", err)
	}
	chains := map[string]bool{}
	for _, p := range providers {
		c, err := p.CAChain(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		chains[string(c)] = true
	}
	if len(chains) != 1 {
		t.Errorf("%d Providers racing on an empty directory made %d CAs, want 1", n, len(chains))
	}
	k, err := providers[0].NewKey(t.Context(), "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := providers[n-1].Unwrap(t.Context(), "orders-db", k.Wrapped); err != nil {
		t.Errorf("Providers racing on an empty directory made different keyrings: %v", err)
	}
}

// TestConcurrentUse is for the race detector: every operation at once,
// from two Providers sharing a directory.
func TestConcurrentUse(t *testing.T) {
	ctx := t.Context()
	a, dir, kek := newProvider(t)
	b, err := local.New(ctx, dir, kek)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 8 {
		p := a
		if i%2 == 1 {
			p = b
		}
		instance := fmt.Sprintf("db-%d", i)
		wg.Go(func() {
			for range 5 {
				c, err := p.Issue(ctx, vault.CertificateRequest{Instance: instance, Hosts: []string{instance + ".internal"}, TTL: time.Hour})
				if err != nil {
					errs <- err
					return
				}
				if err := p.Revoke(ctx, c.Serial); err != nil {
					errs <- err
				}
				k, err := p.NewKey(ctx, instance)
				if err != nil {
					errs <- err
					return
				}
				if got, err := p.Unwrap(ctx, instance, k.Wrapped); err != nil || !bytes.Equal(got, k.Plaintext) {
					errs <- fmt.Errorf("unwrap: %v", err)
				}
				if _, err := p.Rewrap(ctx, instance, k.Wrapped); err != nil {
					errs <- err
				}
			}
		})
		wg.Go(func() {
			if err := p.RotateMaster(ctx); err != nil {
				errs <- err
			}
			if _, err := p.CRL(ctx); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	k, err := a.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if k.MasterVersion != 9 {
		t.Errorf("master version %d after 8 concurrent rotations, want 9", k.MasterVersion)
	}
	der, err := b.CRL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(crl.RevokedCertificateEntries); got != 40 {
		t.Errorf("CRL lists %d serials after 40 concurrent revocations, want 40", got)
	}
}

func TestLogsHoldNoKeyMaterial(t *testing.T) {
	ctx := t.Context()
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, dir, kek := newProvider(t, local.WithLogger(log))
	var outputs []string
	c, err := p.Issue(ctx, vaulttest.DefaultRequest())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Revoke(ctx, c.Serial); err != nil {
		t.Fatal(err)
	}
	k, err := p.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.RotateMaster(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = p.Unwrap(ctx, "payments-db", k.Wrapped)
	outputs = append(outputs, err.Error())
	_, err = local.New(ctx, dir, newKEK(t))
	outputs = append(outputs, err.Error())
	outputs = append(outputs, buf.String(), fmt.Sprint(kek), fmt.Sprintf("%#v %x %s %+v", kek, kek, kek, kek))
	if !strings.Contains(buf.String(), "rotated master key") {
		t.Errorf("the log misses the rotation:\n%s", buf.String())
	}

	secrets := append(local.CAKeyForms(p), local.MasterKeys(p)...)
	secrets = append(secrets, local.KEKBytes(kek), c.Key, k.Plaintext)
	for _, s := range secrets {
		vaulttest.NoSecretIn(t, s, outputs)
		for _, out := range outputs {
			if strings.Contains(out, base64.StdEncoding.EncodeToString(s)) {
				t.Errorf("secret leaked in base64: %.120q", out)
			}
		}
	}
}
