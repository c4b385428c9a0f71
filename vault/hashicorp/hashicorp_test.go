package hashicorp

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sync/errgroup"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

func newClient(t testing.TB, cfg Config, opts ...Option) *Client {
	t.Helper()
	c, err := New(context.Background(), cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestContract runs the shared provider contract against a real Vault,
// through the AppRole and least-privilege policy Bootstrap makes.
func TestContract(t *testing.T) {
	s := vaultservertest.Dev(t)
	c := newClient(t, bootstrapped(t, s))
	vaulttest.TestIssuer(t, c, vaulttest.IssuerOptions{CanRevoke: true, CRL: c.CRL})
	vaulttest.TestKeyWrapper(t, c)
}

func TestBootstrapIsIdempotent(t *testing.T) {
	s := vaultservertest.Dev(t)
	ctx := context.Background()
	secretFile := t.TempDir() + "/secret-id"
	first, err := Bootstrap(ctx, s.Client(), BootstrapOptions{SecretIDFile: secretFile})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Changed) < 8 || first.RoleID == "" {
		t.Fatalf("first run changed %v with role-id %q; want everything set up", first.Changed, first.RoleID)
	}
	info, err := os.Stat(secretFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("secret-id file: %v, mode %v; want 0600", err, info.Mode())
	}
	caBefore, err := s.Client().Logical().Read("pki/cert/ca")
	if err != nil {
		t.Fatal(err)
	}
	second, err := Bootstrap(ctx, s.Client(), BootstrapOptions{SecretIDFile: secretFile})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string(nil), second.Changed); diff != "" {
		t.Errorf("a second run changed things (-want +got):\n%s", diff)
	}
	if second.RoleID != first.RoleID {
		t.Errorf("role-id changed from %s to %s", first.RoleID, second.RoleID)
	}
	caAfter, _ := s.Client().Logical().Read("pki/cert/ca")
	if caBefore.Data["certificate"] != caAfter.Data["certificate"] {
		t.Error("a second run replaced the CA")
	}
	policy, _ := s.Client().Sys().GetPolicy("reconciler")
	for _, forbidden := range []string{"transit/export", "transit/keys/reconciler\"", "sys/", "pki/root"} {
		if strings.Contains(policy, forbidden) {
			t.Errorf("the policy grants %s, more than the reconciler needs:\n%s", forbidden, policy)
		}
	}
}

func TestBootstrapImportsACA(t *testing.T) {
	s := vaultservertest.Dev(t)
	ca := generateCABundle(t)
	if _, err := Bootstrap(context.Background(), s.Client(), BootstrapOptions{ImportCA: ca.bundle}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, Config{Address: s.Addr, Token: vault.Secret(s.Token)})
	cert, err := c.Issue(context.Background(), vaulttest.DefaultRequest())
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := vault.ParseLeaf(cert.CertPEM)
	if err := leaf.CheckSignatureFrom(ca.cert); err != nil {
		t.Errorf("the certificate is not signed by the imported CA: %v", err)
	}
}

func TestAppRoleTokenRenewalAndRelogin(t *testing.T) {
	s := vaultservertest.Dev(t)
	cfg := bootstrapped(t, s)
	// Tokens that live 2s and can be renewed to 4s at most: the client
	// must renew, then log in again, and keep working.
	if _, err := s.Client().Logical().Write("auth/approle/role/reconciler", map[string]any{
		"token_policies": "reconciler", "token_ttl": "2s", "token_max_ttl": "4s",
	}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := newClient(t, cfg, WithRegisterer(reg))
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.NewKey(ctx, "orders-db"); err != nil {
			t.Fatalf("NewKey at %s: %v", time.Until(deadline), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if n := testutil.ToFloat64(c.metrics.renewals.WithLabelValues("renewed")); n < 1 {
		t.Errorf("%v renewals, want at least one", n)
	}
	if n := testutil.ToFloat64(c.metrics.renewals.WithLabelValues("ended")); n < 1 {
		t.Errorf("renewal ended %v times, want at least one new login", n)
	}
}

func TestDeniedRequestsAreNotRetried(t *testing.T) {
	s := vaultservertest.Dev(t)
	cfg := bootstrapped(t, s)
	ctx := context.Background()

	// A token whose policy lacks transit.
	if err := s.Client().Sys().PutPolicy("pki-only", `path "pki/issue/reconciler" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.Client().Auth().Token().Create(&apiTokenRequest{Policies: []string{"pki-only"}})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	limited := newClient(t, Config{Address: s.Addr, Token: vault.Secret(tok.Auth.ClientToken), Retry: cfg.Retry}, WithRegisterer(reg))
	start := time.Now()
	_, err = limited.NewKey(ctx, "orders-db")
	if !errors.Is(err, vault.ErrDenied) {
		t.Fatalf("NewKey without permission = %v, want vault.ErrDenied", err)
	}
	if !strings.Contains(err.Error(), `"update" on "transit/datakey/plaintext/reconciler"`) {
		t.Errorf("the error does not say which permission is missing: %v", err)
	}
	if strings.Contains(err.Error(), tok.Auth.ClientToken) {
		t.Error("the error holds the token")
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("a denied request took %s: it was retried", time.Since(start))
	}
	if n := testutil.ToFloat64(limited.metrics.errors.WithLabelValues("transit", "datakey", "permission_denied")); n != 1 {
		t.Errorf("%v permission errors counted, want exactly 1 (no retry)", n)
	}

	// A role that does not exist.
	wrongRole := cfg
	wrongRole.Role = "no-such-role"
	c := newClient(t, wrongRole)
	_, err = c.Issue(ctx, vaulttest.DefaultRequest())
	if !errors.Is(err, vault.ErrDenied) || !strings.Contains(err.Error(), "pki/issue/no-such-role") {
		t.Errorf("Issue with an unknown role = %v, want vault.ErrDenied naming the path", err)
	}

	// A wrong AppRole secret-id.
	bad := cfg
	bad.AppRole = &AppRole{RoleID: cfg.AppRole.RoleID, SecretIDFile: t.TempDir() + "/bad"}
	os.WriteFile(bad.AppRole.SecretIDFile, []byte("canary-secret-id-0d1f"), 0o600)
	_, err = New(ctx, bad)
	if !errors.Is(err, vault.ErrDenied) || strings.Contains(err.Error(), "canary-secret-id-0d1f") {
		t.Errorf("login with a wrong secret-id = %v, want vault.ErrDenied without the secret", err)
	}
}

// TestVaultRestartMidRun kills a file-backed Vault while the client works,
// starts and unseals it again: operations wait with backoff, then succeed.
func TestVaultRestartMidRun(t *testing.T) {
	s := vaultservertest.File(t)
	cfg := bootstrapped(t, s)
	reg := prometheus.NewRegistry()
	c := newClient(t, cfg, WithRegisterer(reg))
	ctx := context.Background()
	k, err := c.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond) // Vault is down by then
		_, err := c.Unwrap(ctx, "orders-db", k.Wrapped)
		done <- err
	}()
	s.Restart(2 * time.Second)
	if err := <-done; err != nil {
		t.Fatalf("Unwrap across a Vault restart: %v", err)
	}
	retried := testutil.ToFloat64(c.metrics.errors.WithLabelValues("transit", "decrypt", "connection")) +
		testutil.ToFloat64(c.metrics.errors.WithLabelValues("transit", "decrypt", "unavailable"))
	if retried < 1 {
		t.Errorf("no failed attempt was counted: the restart did not happen under the request")
	}
	if _, err := c.Issue(ctx, vaulttest.DefaultRequest()); err != nil {
		t.Errorf("Issue after the restart: %v", err)
	}
}

// TestSecretsStayOutOfLogsErrorsAndMetrics plants canaries (an RPC key, a
// private key, the secret-id) and greps everything the client produced.
func TestSecretsStayOutOfLogsErrorsAndMetrics(t *testing.T) {
	s := vaultservertest.Dev(t)
	cfg := bootstrapped(t, s)
	secretID, _ := os.ReadFile(cfg.AppRole.SecretIDFile)
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	c := newClient(t, cfg, WithRegisterer(reg), WithLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	ctx := context.Background()
	k, err := c.NewKey(ctx, "orders-db")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := c.Issue(ctx, vaulttest.DefaultRequest())
	if err != nil {
		t.Fatal(err)
	}
	var outputs []string
	_, err = c.Unwrap(ctx, "payments-db", k.Wrapped)
	outputs = append(outputs, fmt.Sprint(err))
	_, err = c.Rewrap(ctx, "payments-db", k.Wrapped)
	outputs = append(outputs, fmt.Sprint(err))
	metrics, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, buf.String(), fmt.Sprint(metrics))
	vaulttest.NoSecretIn(t, k.Plaintext, outputs)
	vaulttest.NoSecretIn(t, cert.Key, outputs)
	vaulttest.NoSecretIn(t, vault.Secret(strings.TrimSpace(string(secretID))), outputs)
	for _, out := range outputs {
		if strings.Contains(out, base64.StdEncoding.EncodeToString(k.Plaintext)) {
			t.Errorf("the RPC key leaked in base64: %.100q", out)
		}
	}
}

// TestConnectionsAreReused makes rounds of eight calls at once, as the
// controller's workers do, through a proxy that counts the connections
// opened to Vault: after the first round they are all reused.
func TestConnectionsAreReused(t *testing.T) {
	s := vaultservertest.Dev(t)
	cfg := bootstrapped(t, s)
	var opened atomic.Int64
	cfg.Address = countingProxy(t, strings.TrimPrefix(s.Addr, "http://"), &opened)
	c := newClient(t, cfg)
	ctx := context.Background()
	const workers, rounds = 8, 5
	var first int64
	for round := range rounds {
		var g errgroup.Group
		for w := range workers {
			g.Go(func() error {
				_, err := c.NewKey(ctx, fmt.Sprintf("db-%d-%d", round, w))
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			first = opened.Load()
		}
	}
	if later := opened.Load() - first; later > 1 {
		t.Errorf("%d rounds of %d calls opened %d connections after the first round (%d in it), want them reused", rounds-1, workers, later, first)
	}
}

// countingProxy forwards TCP connections to addr and counts them; it
// returns its own address as a Vault URL.
func countingProxy(t *testing.T, addr string, opened *atomic.Int64) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			opened.Add(1)
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", addr)
				if err != nil {
					return
				}
				defer out.Close()
				go io.Copy(out, in)
				io.Copy(in, out)
			}()
		}
	}()
	return "http://" + l.Addr().String()
}
