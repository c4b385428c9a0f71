package controller_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/reconciler/controller"
	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/reconciler/store/sqlite"
	"github.com/reconciler-dev/reconciler/sources/dir"
	"github.com/reconciler-dev/reconciler/vault"
)

const pgInstance = `apiVersion: reconciler/v1
kind: Instance
metadata:
  name: orders-db
  labels: {env: production}
spec:
  datastore: {type: postgresql, version: "15"}
  hosts: [127.0.0.1]
  ssl: %s # the line merge requests flip
  rpcEncryption: enabled
  tls: {requireSecureTransport: true}
`

const searchInstance = `apiVersion: reconciler/v1
kind: Instance
metadata:
  name: search-db
spec:
  datastore: {type: manticore, version: "6.3"}
  hosts: [127.0.0.1]
  ssl: disabled
`

// rig is a fleet directory, the controller on the local provider and
// SQLite, the agents' server on real HTTPS, and one real agent with the
// real PostgreSQL installer for a private PostgreSQL.
type rig struct {
	t      *testing.T
	fleet  string
	ctl    *controller.Controller
	store  store.Store
	ca     *datastoretest.CA
	pg     *datastoretest.Server
	reg    *prometheus.Registry
	caFile string
}

func newRig(t *testing.T, tune ...func(*controller.Config)) *rig {
	t.Helper()
	r := &rig{t: t, fleet: t.TempDir(), reg: prometheus.NewRegistry()}
	r.write("instances/orders.yaml", strings.Replace(pgInstance, "%s", "disabled", 1))
	r.write("instances/search.yaml", searchInstance)
	src, err := dir.New(r.fleet)
	if err != nil {
		t.Fatal(err)
	}
	r.ca = datastoretest.NewCA(t)
	r.caFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(r.caFile, r.ca.ChainPEM, 0o644)
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.store = st
	tokens, err := transport.NewTokenDir(filepath.Join(t.TempDir(), "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	var ctl *controller.Controller
	server := transport.NewServer(transport.WithTokens(tokens),
		transport.WithStatusHook(func(ctx context.Context, s agent.Status) { ctl.AgentReported(ctx, s) }),
		transport.WithKeyPromotedHook(func(ctx context.Context, name string, v uint32) { ctl.KeyPromoted(ctx, name, v) }))
	https := httptest.NewTLSServer(server.Handler())
	t.Cleanup(https.Close)
	ccfg := controller.Config{
		Source: src, Instances: "instances", Policies: "policies",
		Providers: controller.Providers{Issuers: vault.Registry{"local": r.ca.Provider}, Default: "local", Keys: r.ca.Provider},
		Store:     st, Agents: server, Poll: time.Hour, Resync: time.Hour,
	}
	for _, f := range tune {
		f(&ccfg)
	}
	ctl = controller.New(ccfg, controller.WithRegisterer(r.reg))
	r.ctl = ctl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller Run: %v", err)
		}
	})

	// The host: bootstrap's token, then the real agent.
	r.pg = datastoretest.PostgreSQL(t, datastoretest.Options{})
	token, _ := tokens.Issue("orders-db")
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "token"), transport.FormatToken(token), 0o600)
	cfg := &agent.Config{Instance: "orders-db", StateDir: filepath.Join(host, "state"), EnrollmentTokenFile: filepath.Join(host, "token"),
		Datastore: agent.DatastoreConfig{Type: "postgresql", Version: "15", ConfigDir: r.pg.ConfigDir, DataDir: r.pg.DataDir,
			Host: r.pg.Host, Port: r.pg.Port, User: r.pg.User, AdminDSN: r.pg.AdminDSN}}
	roots := x509.NewCertPool()
	roots.AddCert(https.Certificate())
	client, err := transport.NewClient(transport.ClientConfig{Instance: "orders-db", URL: https.URL, RootCAs: roots,
		StateDir: cfg.StateDir, TokenFile: cfg.EnrollmentTokenFile, Wait: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := agent.NewInstaller(cfg.Datastore, nil)
	agentCtx, stopAgent := context.WithCancel(context.Background())
	agentDone := make(chan error, 1)
	go func() { agentDone <- agent.New(cfg, client, inst, agent.NewVerifier(cfg.Datastore)).Run(agentCtx) }()
	t.Cleanup(func() { stopAgent(); <-agentDone })
	return r
}

func (r *rig) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.fleet, name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// await triggers a sync and waits until the instance's view satisfies ok.
func (r *rig) await(name, what string, ok func(controller.View) bool) controller.View {
	r.t.Helper()
	r.ctl.Trigger()
	var v controller.View
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var found bool
		v, found = r.ctl.Instance(name)
		if found && ok(v) {
			return v
		}
	}
	r.t.Fatalf("%s: not %s in time; view %+v", name, what, v)
	return v
}

func pgSSL(t *testing.T, dsn string) (bool, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return false, err
	}
	defer c.Close(ctx)
	var ssl bool
	err = c.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl)
	return ssl, err
}

// TestFlipSSLOnAndOff is the product in one test: the instance file says
// ssl: disabled, the agent enrolls, a change to ssl: enabled gets a
// certificate from the provider installed and verified, coverage counts
// it, and ssl: disabled takes it off and revokes the certificate.
func TestFlipSSLOnAndOff(t *testing.T) {
	r := newRig(t)
	r.await("orders-db", "enrolled with its RPC key", func(v controller.View) bool { return v.KeyVersion == 1 && !v.LastSeen.IsZero() })
	if v, _ := r.ctl.Instance("search-db"); v.Phase != agent.Unreachable {
		t.Errorf("search-db without an agent: phase %s, want Unreachable", v.Phase)
	}
	if got := testutil.ToFloat64(coverage(t, r.reg, "postgresql")); got != 0 {
		t.Errorf("coverage before SSL = %v, want 0", got)
	}

	r.write("instances/orders.yaml", strings.Replace(pgInstance, "%s", "enabled", 1))
	v := r.await("orders-db", "Active with SSL verified", func(v controller.View) bool { return v.Phase == agent.Active && v.Verified })
	ssl, err := pgSSL(t, r.pg.TCPDSN+" sslmode=verify-full sslrootcert="+r.caFile)
	if err != nil || !ssl {
		t.Fatalf("verify-full client: ssl=%v, %v", ssl, err)
	}
	rec, err := r.store.Get(t.Context(), "orders-db")
	if err != nil || rec.Certificate == nil || rec.Certificate.State != store.CertInstalled || rec.Certificate.Serial != v.Serial {
		t.Fatalf("stored certificate %+v (%v), want installed with the served serial %s", rec.Certificate, err, v.Serial)
	}
	if rec.AppliedRevision == "" || len(rec.History) == 0 {
		t.Errorf("applied revision %q, history %v: want the revision recorded", rec.AppliedRevision, rec.History)
	}
	if got := testutil.ToFloat64(coverage(t, r.reg, "postgresql")); got != 1 {
		t.Errorf("coverage with SSL verified = %v, want 1", got)
	}
	served := v.Serial

	r.write("instances/orders.yaml", strings.Replace(pgInstance, "%s", "disabled", 1))
	r.await("orders-db", "Active with SSL off", func(v controller.View) bool { return v.Phase == agent.Active && !v.SSL && v.Serial == "" })
	waitFor(t, "the certificate revoked in the store", func() bool {
		rec, _ := r.store.Get(t.Context(), "orders-db")
		return rec.Certificate != nil && rec.Certificate.State == store.CertRevoked && rec.Certificate.Serial == served
	})
	if _, err := pgSSL(t, r.pg.TCPDSN+" sslmode=require"); err == nil {
		t.Error("a TLS client still got in after SSL was disabled")
	}
}

// TestBrokenFileHoldsOnlyItsInstances: a file that no longer parses holds
// its instances, the rest of the fleet goes on, and the fix is picked up.
func TestBrokenFileHoldsOnlyItsInstances(t *testing.T) {
	r := newRig(t)
	r.await("search-db", "planned", func(v controller.View) bool { return v.Name == "search-db" })
	r.write("instances/search.yaml", "apiVersion: reconciler/v1\nkind: Instance\nmetadata: {name: search-db\n")
	r.write("instances/orders.yaml", strings.Replace(pgInstance, "%s", "enabled", 1))
	r.await("orders-db", "Active with SSL verified", func(v controller.View) bool { return v.Phase == agent.Active && v.Verified })
	if v, ok := r.ctl.Instance("search-db"); ok && !strings.Contains(v.Message, "held") {
		t.Errorf("search-db with a broken file: %+v, want it held", v)
	}
	if len(r.ctl.Problems()) == 0 {
		t.Error("the broken file is not reported")
	}
	r.write("instances/search.yaml", searchInstance)
	r.await("search-db", "no longer held", func(v controller.View) bool { return !strings.Contains(v.Message, "held") })
	if len(r.ctl.Problems()) != 0 {
		t.Errorf("problems after the fix: %v", r.ctl.Problems())
	}
}

func coverage(t *testing.T, reg *prometheus.Registry, datastore string) prometheus.Collector {
	t.Helper()
	return gathered{reg: reg, name: "reconciler_encryption_coverage_ratio", label: datastore}
}

// gathered is one series of a registry, for testutil.ToFloat64.
type gathered struct {
	reg         *prometheus.Registry
	name, label string
}

func (g gathered) Describe(chan<- *prometheus.Desc) {}

func (g gathered) Collect(ch chan<- prometheus.Metric) {
	families, _ := g.reg.Gather()
	for _, mf := range families {
		if mf.GetName() != g.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == g.label {
					ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.GaugeValue, m.GetGauge().GetValue())
				}
			}
		}
	}
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

// TestRotateKey: a rotation is stored as the next key, delivered under
// the current one, and recorded as the only key once the agent uses it.
func TestRotateKey(t *testing.T) {
	r := newRig(t)
	r.await("orders-db", "enrolled with its RPC key", func(v controller.View) bool { return v.KeyVersion == 1 && !v.LastSeen.IsZero() })
	if _, err := r.ctl.RotateKey(t.Context(), "search-db"); !errors.Is(err, controller.ErrNoRPCKey) {
		t.Errorf("rotating an instance without RPC encryption: %v, want ErrNoRPCKey", err)
	}
	v, err := r.ctl.RotateKey(t.Context(), "orders-db")
	if err != nil || v != 2 {
		t.Fatalf("RotateKey = %d, %v; want version 2", v, err)
	}
	if _, err := r.ctl.RotateKey(t.Context(), "orders-db"); !errors.Is(err, controller.ErrRotationPending) {
		t.Errorf("a second rotation at once: %v, want ErrRotationPending", err)
	}
	waitFor(t, "the rotation recorded in the store", func() bool {
		rec, _ := r.store.Get(t.Context(), "orders-db")
		return len(rec.Keys) == 1 && rec.Keys[0].Version == 2 && rec.Keys[0].State == store.KeyCurrent
	})
	r.await("orders-db", "sealing under version 2", func(v controller.View) bool { return v.KeyVersion == 2 })
}

// TestDeletedFileLeavesTheInstanceUnmanaged: without prune, an instance
// whose file is deleted is left as it is and reported.
func TestDeletedFileLeavesTheInstanceUnmanaged(t *testing.T) {
	r := newRig(t)
	r.write("instances/orders.yaml", strings.Replace(pgInstance, "%s", "enabled", 1))
	v := r.await("orders-db", "Active with SSL verified", func(v controller.View) bool { return v.Phase == agent.Active && v.Verified })
	if err := os.Remove(filepath.Join(r.fleet, "instances/orders.yaml")); err != nil {
		t.Fatal(err)
	}
	r.await("orders-db", "unmanaged", func(v controller.View) bool { return v.Unmanaged && strings.Contains(v.Message, "file was deleted") })
	if ssl, err := pgSSL(t, r.pg.TCPDSN+" sslmode=verify-full sslrootcert="+r.caFile); err != nil || !ssl {
		t.Errorf("the released instance's TLS was touched: ssl=%v, %v", ssl, err)
	}
	rec, _ := r.store.Get(t.Context(), "orders-db")
	if rec.Certificate == nil || rec.Certificate.State != store.CertInstalled || rec.Certificate.Serial != v.Serial {
		t.Errorf("the released instance's certificate record changed: %+v", rec.Certificate)
	}
	r.write("instances/orders.yaml", strings.Replace(pgInstance, "%s", "enabled", 1))
	r.await("orders-db", "managed again once its file is back", func(v controller.View) bool { return !v.Unmanaged && v.Verified })
}

// TestPruneRemovesSSLThenForgets: with prune, a deleted instance has SSL
// taken off by its agent, its certificate revoked, and is forgotten.
func TestPruneRemovesSSLThenForgets(t *testing.T) {
	r := newRig(t, func(c *controller.Config) { c.Prune = true })
	r.write("instances/orders.yaml", strings.Replace(pgInstance, "%s", "enabled", 1))
	r.await("orders-db", "Active with SSL verified", func(v controller.View) bool { return v.Phase == agent.Active && v.Verified })
	os.Remove(filepath.Join(r.fleet, "instances/orders.yaml"))
	r.ctl.Trigger()
	waitFor(t, "the instance forgotten", func() bool {
		_, err := r.store.Get(t.Context(), "orders-db")
		return errors.Is(err, store.ErrNotFound)
	})
	if _, err := pgSSL(t, r.pg.TCPDSN+" sslmode=require"); err == nil {
		t.Error("the pruned instance still serves TLS")
	}
	r.ctl.Trigger()
	waitFor(t, "the instance gone from the views", func() bool { _, ok := r.ctl.Instance("orders-db"); return !ok })
}

// TestDeniedInstanceIsNeverTouched: a policy denial keeps the instance
// at its last applied state: nothing issued, nothing published.
func TestDeniedInstanceIsNeverTouched(t *testing.T) {
	r := newRig(t)
	r.await("orders-db", "enrolled", func(v controller.View) bool { return v.Phase == agent.Active })
	r.write("policies/ssl.rego", `package main

deny contains msg if {
	input.metadata.name == "orders-db"
	input.spec.ssl == "enabled"
	msg := "orders-db must wait for the change freeze"
}
`)
	r.write("instances/orders.yaml", strings.Replace(pgInstance, "%s", "enabled", 1))
	v := r.await("orders-db", "Denied", func(v controller.View) bool { return v.Phase == agent.Denied })
	if !strings.Contains(v.Message, "change freeze") {
		t.Errorf("denied message %q does not carry the policy's", v.Message)
	}
	time.Sleep(300 * time.Millisecond)
	rec, _ := r.store.Get(t.Context(), "orders-db")
	if rec.Certificate != nil || rec.Generation != 1 {
		t.Errorf("a denied instance was touched: certificate %+v, generation %d", rec.Certificate, rec.Generation)
	}
	if _, err := pgSSL(t, r.pg.TCPDSN+" sslmode=require"); err == nil {
		t.Error("a denied instance serves TLS")
	}
}
