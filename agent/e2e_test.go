package agent_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/agent/verify"
	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/hashicorp"
	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
)

// provider is what the reconciler takes certificates and RPC keys from.
type provider interface {
	vault.Issuer
	vault.KeyWrapper
}

// rig is the reconciler's side of the agent protocol on a real HTTPS
// listener, one agent process (the real agent, transport and installer)
// for a real datastore, and the key provider that feeds them.
type rig struct {
	t        *testing.T
	name     string
	server   *transport.Server
	provider provider
	chain    []byte // the provider's CA chain, what clients trust
	ds       *datastoretest.Server
	cancel   context.CancelFunc
	done     chan error
	gen      uint64
}

func newRig(t *testing.T, name string, p provider, ds *datastoretest.Server, kind, version string) *rig {
	t.Helper()
	ctx := t.Context()
	r := &rig{t: t, name: name, provider: p, ds: ds, done: make(chan error, 1)}
	var err error
	if r.chain, err = p.CAChain(ctx); err != nil {
		t.Fatal(err)
	}
	tokens, err := transport.NewTokenDir(filepath.Join(t.TempDir(), "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	r.server = transport.NewServer(transport.WithTokens(tokens))
	https := httptest.NewTLSServer(r.server.Handler())
	t.Cleanup(https.Close)
	dk, err := p.NewKey(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.server.Register(name, transport.Keys{Current: &transport.Key{Version: 1, Secret: dk.Plaintext}}); err != nil {
		t.Fatal(err)
	}

	// The host: what `reconciler agent bootstrap` writes, then the agent.
	host := t.TempDir()
	token, err := tokens.Issue(name)
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(host, "enrollment-token")
	if err := os.WriteFile(tokenFile, transport.FormatToken(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &agent.Config{
		Instance: name, StateDir: filepath.Join(host, "state"), EnrollmentTokenFile: tokenFile,
		Reconciler: agent.Endpoint{URL: https.URL},
		Datastore: agent.DatastoreConfig{Type: kind, Version: version, ConfigDir: ds.ConfigDir, DataDir: ds.DataDir,
			Host: ds.Host, Port: ds.Port, User: ds.User, AdminDSN: ds.AdminDSN},
	}
	roots := x509.NewCertPool()
	roots.AddCert(https.Certificate())
	client, err := transport.NewClient(transport.ClientConfig{Instance: name, URL: https.URL, RootCAs: roots,
		StateDir: cfg.StateDir, TokenFile: tokenFile, Wait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := agent.NewInstaller(cfg.Datastore, nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- agent.New(cfg, client, inst, agent.NewVerifier(cfg.Datastore)).Run(runCtx) }()
	t.Cleanup(r.stop)
	return r
}

func (r *rig) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	if err := <-r.done; err != nil {
		r.t.Errorf("agent Run: %v", err)
	}
}

// publish sends the next generation: SSL on with a fresh certificate, or
// off. It returns the certificate.
func (r *rig) publish(ssl bool) *vault.Certificate {
	r.t.Helper()
	r.gen++
	d := agent.Desired{Generation: r.gen, SSL: ssl}
	var cert *vault.Certificate
	if ssl {
		var err error
		cert, err = r.provider.Issue(r.t.Context(), vault.CertificateRequest{Instance: r.name, Hosts: []string{"127.0.0.1"}, TTL: time.Hour})
		if err != nil {
			r.t.Fatal(err)
		}
		d.Bundle = &installers.Bundle{CertPEM: cert.CertPEM, ChainPEM: cert.ChainPEM, Key: cert.Key,
			Serial: cert.Serial, Fingerprint: cert.Fingerprint, MinVersion: "1.2", RequireSecureTransport: true}
	}
	if err := r.server.Publish(r.name, d); err != nil {
		r.t.Fatal(err)
	}
	return cert
}

// await waits until the agent reports the current generation in phase
// and returns that status.
func (r *rig) await(phase agent.Phase) agent.Status {
	r.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var last agent.Status
	for time.Now().Before(deadline) {
		obs, _ := r.server.Observed(r.name)
		last = obs.Status
		if last.Generation == r.gen && last.Phase == phase {
			return last
		}
		if last.Generation == r.gen && last.Phase == agent.Error {
			r.t.Fatalf("generation %d ended in Error: %s", r.gen, last.Message)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("generation %d not %s in time; last status %+v", r.gen, phase, last)
	return last
}

func (r *rig) caFile() string {
	p := filepath.Join(r.t.TempDir(), "ca.pem")
	if err := os.WriteFile(p, r.chain, 0o644); err != nil {
		r.t.Fatal(err)
	}
	return p
}

// vaultProvider is a real Vault dev server, configured by Bootstrap, used
// through the AppRole it made.
func vaultProvider(t *testing.T) provider {
	t.Helper()
	s := vaultservertest.Dev(t)
	secretFile := filepath.Join(t.TempDir(), "secret-id")
	res, err := hashicorp.Bootstrap(t.Context(), s.Client(), hashicorp.BootstrapOptions{SecretIDFile: secretFile})
	if err != nil {
		t.Fatal(err)
	}
	c, err := hashicorp.New(t.Context(), hashicorp.Config{Address: s.Addr,
		AppRole: &hashicorp.AppRole{RoleID: res.RoleID, SecretIDFile: secretFile}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAgentTurnsPostgreSQLTLSOnRotatesAndOff runs the whole agent, over
// the sealed transport, against a private PostgreSQL with certificates
// and the RPC key from a real Vault, and proves each step from the
// client side.
func TestAgentTurnsPostgreSQLTLSOnRotatesAndOff(t *testing.T) {
	pg := datastoretest.PostgreSQL(t, datastoretest.Options{})
	r := newRig(t, "orders-db", vaultProvider(t), pg, "postgresql", "15")
	verifyFull := pg.TCPDSN + " sslmode=verify-full sslrootcert=" + r.caFile()

	first := r.publish(true)
	st := r.await(agent.Active)
	if !st.Verified || st.Serial != first.Serial || st.KeyVersion != 1 {
		t.Fatalf("status after enabling SSL: %+v; want verified, serial %s, sealed under key 1", st, first.Serial)
	}
	var ssl bool
	if err := pgQuery(t, verifyFull, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &ssl); err != nil || !ssl {
		t.Fatalf("verify-full client: ssl=%v, %v; want a TLS connection seen in pg_stat_ssl", ssl, err)
	}
	if err := pgQuery(t, pg.TCPDSN+" sslmode=disable", "SELECT 1", new(int)); err == nil {
		t.Error("a plaintext TCP client got in although requireSecureTransport is on")
	}
	var started time.Time
	pgQuery(t, pg.AdminDSN, "SELECT pg_postmaster_start_time()", &started)

	// An RPC key rotation in the middle changes nothing for the datastore.
	dk, err := r.provider.NewKey(t.Context(), r.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.server.Rotate(r.name, transport.Key{Version: 2, Secret: dk.Plaintext}); err != nil {
		t.Fatal(err)
	}

	second := r.publish(true)
	st = r.await(agent.Active)
	if st.Serial != second.Serial || !st.Verified {
		t.Fatalf("status after rotation: %+v, want serial %s verified", st, second.Serial)
	}
	if got := servedSerial(t, verify.PostgreSQL, pg.Addr); got != second.Serial {
		t.Errorf("served serial %s, want the rotated %s", got, second.Serial)
	}
	var again time.Time
	pgQuery(t, pg.AdminDSN, "SELECT pg_postmaster_start_time()", &again)
	if !again.Equal(started) {
		t.Errorf("the server restarted for a rotation (%v → %v); PostgreSQL reloads", started, again)
	}
	waitFor(t, "the RPC key rotation to complete", func() bool {
		obs, _ := r.server.Observed(r.name)
		return obs.KeyVersion == 2 && obs.NextKeyVersion == 0 && obs.Status.KeyVersion == 2
	})

	r.publish(false)
	st = r.await(agent.Active)
	if st.SSL || st.Verified {
		t.Errorf("status after disabling SSL: %+v", st)
	}
	if err := pgQuery(t, pg.TCPDSN+" sslmode=disable", "SELECT 1", new(int)); err != nil {
		t.Errorf("plaintext client after disabling SSL: %v", err)
	}
	if err := pgQuery(t, pg.TCPDSN+" sslmode=require", "SELECT 1", new(int)); err == nil {
		t.Error("a TLS client still got in after SSL was disabled")
	}
}

// TestAgentTurnsMariaDBTLSOnAfterARestart: MariaDB cannot turn TLS on
// without a restart, so the agent reports RestartRequired, and Active once
// the operator restarted it; a rotation is then a FLUSH SSL.
func TestAgentTurnsMariaDBTLSOnAfterARestart(t *testing.T) {
	db := datastoretest.MariaDB(t, datastoretest.Options{})
	ca := datastoretest.NewCA(t)
	r := newRig(t, "billing-db", ca.Provider, db, "mariadb", "10.11.19")

	first := r.publish(true)
	st := r.await(agent.RestartRequired)
	if st.Verified {
		t.Errorf("verified before the restart: %+v", st)
	}
	db.Restart(t)
	st = r.await(agent.Active)
	if !st.Verified || st.Serial != first.Serial {
		t.Fatalf("status after the restart: %+v, want verified serial %s", st, first.Serial)
	}
	if c, err := mariaCipher(t, db, r.chain); err != nil || c == "" {
		t.Fatalf("verified client: Ssl_cipher %q, %v; want a cipher", c, err)
	}
	pid := db.Pid()
	second := r.publish(true)
	st = r.await(agent.Active)
	if st.Serial != second.Serial || !st.Verified || db.Pid() != pid {
		t.Errorf("rotation: status %+v, pid %d → %d; want serial %s verified, same server", st, pid, db.Pid(), second.Serial)
	}
}

func pgQuery(t *testing.T, dsn, q string, dest ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	return c.QueryRow(ctx, q).Scan(dest...)
}

var tlsConfigs atomic.Int64

func mariaCipher(t *testing.T, s *datastoretest.Server, chain []byte) (string, error) {
	t.Helper()
	cfg, err := mysql.ParseDSN(s.TCPDSN)
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(chain)
	name := fmt.Sprintf("e2e-%d", tlsConfigs.Add(1))
	if err := mysql.RegisterTLSConfig(name, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}); err != nil {
		return "", err
	}
	cfg.TLSConfig = name
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return "", err
	}
	defer db.Close()
	var k, v string
	err = db.QueryRowContext(t.Context(), "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&k, &v)
	return v, err
}

func servedSerial(t *testing.T, kind, addr string) string {
	t.Helper()
	state, err := verify.Handshake(t.Context(), kind, addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return vault.SerialString(state.PeerCertificates[0].SerialNumber)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
