package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/vault/hashicorp"
	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
)

// fleetRepo is the fleet's git repository, committed to as a merge would.
type fleetRepo struct {
	t    testing.TB
	dir  string
	repo *gogit.Repository
}

func newFleetRepo(t testing.TB) *fleetRepo {
	t.Helper()
	dir := t.TempDir()
	repo, err := gogit.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	return &fleetRepo{t: t, dir: dir, repo: repo}
}

// commit writes files (name → content; "" removes) and commits them.
func (f *fleetRepo) commit(msg string, files map[string]string) string {
	f.t.Helper()
	wt, err := f.repo.Worktree()
	if err != nil {
		f.t.Fatal(err)
	}
	for name, content := range files {
		p := filepath.Join(f.dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
		if _, err := wt.Add(name); err != nil {
			f.t.Fatal(err)
		}
	}
	h, err := wt.Commit(msg, &gogit.CommitOptions{Author: &object.Signature{Name: "merge bot", Email: "ci@example.com", When: time.Now()}})
	if err != nil {
		f.t.Fatal(err)
	}
	return h.String()
}

func e2eInstance(name, kind, version, ssl string) string {
	return fmt.Sprintf(`apiVersion: reconciler/v1
kind: Instance
metadata:
  name: %s
  labels: {env: production}
spec:
  datastore: {type: %s, version: %q}
  hosts: [127.0.0.1]
  ssl: %s
  rpcEncryption: enabled
`, name, kind, version, ssl)
}

// TestEndToEnd is the product's acceptance test: a real git repository,
// the real Vault dev server, the daemon, agents for a real PostgreSQL and
// a real MariaDB and file-only agents for MongoDB, Cassandra and
// Manticore. A commit (announced by a signed webhook) turns SSL on; the
// datastores are checked from the client side with Vault's CA. A broken
// commit holds only its file's instance, a fix releases it. Disabling SSL
// revokes the certificate in Vault. No secret shows in any log, metric,
// API answer or diff output.
func TestEndToEnd(t *testing.T) {
	ctx := t.Context()
	vs := vaultservertest.Dev(t)
	secretFile := filepath.Join(t.TempDir(), "vault-secret-id")
	boot, err := hashicorp.Bootstrap(ctx, vs.Client(), hashicorp.BootstrapOptions{SecretIDFile: secretFile})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := vs.Client().Logical().ReadRawWithContext(ctx, "pki/ca_chain")
	if err != nil {
		t.Fatal(err)
	}
	vaultCA, _ := io.ReadAll(chain.Body)
	chain.Body.Close()
	vaultCAFile := filepath.Join(t.TempDir(), "vault-ca.pem")
	os.WriteFile(vaultCAFile, vaultCA, 0o644)

	pg := datastoretest.PostgreSQL(t, datastoretest.Options{})
	maria := datastoretest.MariaDB(t, datastoretest.Options{})

	fleet := newFleetRepo(t)
	files := map[string]string{
		"instances/orders.yaml":  e2eInstance("orders-db", "postgresql", "15", "disabled"),
		"instances/billing.yaml": e2eInstance("billing-db", "mariadb", "10.11.19", "disabled"),
		"instances/catalog.yaml": e2eInstance("catalog-mongo", "mongodb", "7.0", "enabled"),
		"instances/events.yaml":  e2eInstance("events-cassandra", "cassandra", "4.1", "enabled"),
		"instances/search.yaml":  e2eInstance("search-db", "manticore", "6.3", "enabled"),
	}
	fleet.commit("the fleet", files)

	// The daemon, on the repository and Vault.
	state := t.TempDir()
	api, agentsAddr := freeAddr(t), freeAddr(t)
	const webhookSecret = "CANARY-webhook-secret-0123456789"
	admin := "CANARY-admin-token-0123456789abcdef0123"
	for name, content := range map[string]string{"webhook": webhookSecret, "admin.token": admin} {
		os.WriteFile(filepath.Join(state, name), []byte(content), 0o600)
	}
	cfg := fmt.Sprintf(`source:
  git: {url: %q, branch: master, pollInterval: 1h, webhookSecretFile: webhook, cacheDir: cache}
keyProvider:
  default: vault
  vault:
    address: %q
    appRole: {roleID: %q, secretIDFile: %q}
listen: {api: %q, agents: %q}
tokens:
  - {name: platform, role: admin, file: admin.token}
`, "file://"+fleet.dir, vs.Addr, boot.RoleID, secretFile, api, agentsAddr)
	os.WriteFile(filepath.Join(state, "run.yaml"), []byte(cfg), 0o644)
	daemonLogs := &syncBuffer{b: &bytes.Buffer{}}
	runCtx, stopDaemon := context.WithCancel(context.Background())
	daemonDone := make(chan int, 1)
	go func() {
		daemonDone <- run(runCtx, []string{"run", "--config", filepath.Join(state, "run.yaml")}, io.Discard, daemonLogs)
	}()
	defer func() {
		stopDaemon()
		if code := <-daemonDone; code != 0 {
			t.Errorf("daemon exit %d; logs:\n%s", code, daemonLogs)
		}
	}()
	caFile := filepath.Join(state, "reconciler-ca.pem")
	waitFor(t, "the daemon's CA", func() bool { _, err := os.Stat(caFile); return err == nil })
	d := &daemon{dir: state, api: api, agents: agentsAddr, admin: admin, logs: daemonLogs}
	pem, _ := os.ReadFile(caFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	d.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := d.get(t, "/readyz", "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon is not ready: %d %s; its logs:\n%s", code, body, daemonLogs)
		}
	}

	// The agents, bootstrapped against the daemon.
	var agentLogs []*syncBuffer
	startAgent := func(name, kind string, extra ...string) {
		host := t.TempDir()
		args := append([]string{"agent", "bootstrap", name, "--datastore", kind, "--url", "https://" + agentsAddr, "--ca", caFile,
			"--token-dir", filepath.Join(state, "enrollment-tokens"), "--out", host + "/etc", "--host-dir", host + "/etc",
			"--state-dir", host + "/state", "--host", "127.0.0.1", "--user", ""}, extra...)
		if code, _, stderr := reconcile(t, args...); code != 0 {
			t.Fatalf("bootstrap %s: %s", name, stderr)
		}
		f, _ := os.OpenFile(host+"/etc/agent.yaml", os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("heartbeat: 1s\n")
		f.Close()
		logs := &syncBuffer{b: &bytes.Buffer{}}
		agentLogs = append(agentLogs, logs)
		actx, stop := context.WithCancel(context.Background())
		done := make(chan int, 1)
		go func() { done <- run(actx, []string{"agent", "--config", host + "/etc/agent.yaml"}, io.Discard, logs) }()
		t.Cleanup(func() { stop(); <-done })
	}
	startAgent("orders-db", "postgresql", "--version", "15", "--config-dir", pg.ConfigDir, "--data-dir", pg.DataDir,
		"--port", fmt.Sprint(pg.Port), "--user", pg.User, "--admin-dsn", pg.AdminDSN)
	startAgent("billing-db", "mariadb", "--version", "10.11.19", "--config-dir", maria.ConfigDir,
		"--port", fmt.Sprint(maria.Port), "--user", maria.User, "--admin-dsn", maria.AdminDSN)
	for _, fo := range []struct{ name, kind, file, content string }{
		{"catalog-mongo", "mongodb", "mongod.conf", "storage:\n  dbPath: /var/lib/mongodb\nnet:\n  port: 27017\n  bindIp: 127.0.0.1\n"},
		{"events-cassandra", "cassandra", "cassandra.yaml", mustRead(t, "../../agent/installers/cassandra/testdata/cassandra.yaml")},
		{"search-db", "manticore", "manticore.conf", mustRead(t, "../../agent/installers/manticore/testdata/manticore.conf")},
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, fo.file), []byte(fo.content), 0o644)
		startAgent(fo.name, fo.kind, "--version", map[string]string{"mongodb": "7.0", "cassandra": "4.1", "manticore": "6.3"}[fo.kind], "--config-dir", dir)
	}
	phase := func(name string) (string, bool) {
		_, body := d.get(t, "/v1/instances/"+name, admin)
		var r struct {
			Instance struct {
				Phase    string
				Verified bool `json:"ssl_verified"`
			}
		}
		json.Unmarshal([]byte(body), &r)
		return r.Instance.Phase, r.Instance.Verified
	}
	awaitPhase := func(name, want string, verified bool) {
		t.Helper()
		for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if p, v := phase(name); p == want && v == verified {
				return
			}
		}
		_, body := d.get(t, "/v1/instances/"+name, admin)
		t.Fatalf("%s not %s (verified %v) in time:\n%s", name, want, verified, body)
	}
	for _, n := range []string{"catalog-mongo", "events-cassandra", "search-db"} {
		awaitPhase(n, "RestartRequired", false)
	}
	awaitPhase("orders-db", "Active", false)

	// The merge request that turns SSL on, announced by GitHub's webhook;
	// with it a broken file for one instance.
	files["instances/orders.yaml"] = e2eInstance("orders-db", "postgresql", "15", "enabled")
	files["instances/billing.yaml"] = e2eInstance("billing-db", "mariadb", "10.11.19", "enabled")
	broken := strings.Replace(files["instances/catalog.yaml"], "type: mongodb", "type: mongodb, colour: blue", 1)
	head := fleet.commit("ssl: enable on orders-db and billing-db", map[string]string{
		"instances/orders.yaml": files["instances/orders.yaml"], "instances/billing.yaml": files["instances/billing.yaml"],
		"instances/catalog.yaml": broken})
	postPush(t, d.client, api, webhookSecret, "delivery-1", head)

	awaitPhase("orders-db", "Active", true)
	var pgSSL bool
	if err := pgRow(t, pg.TCPDSN+" sslmode=verify-full sslrootcert="+vaultCAFile, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &pgSSL); err != nil || !pgSSL {
		t.Fatalf("PostgreSQL verify-full with Vault's CA: %v %v", pgSSL, err)
	}
	awaitPhase("billing-db", "RestartRequired", false)
	maria.Restart(t)
	awaitPhase("billing-db", "Active", true)
	if cipher := mariaCipher(t, maria, vaultCA); cipher == "" {
		t.Fatal("MariaDB with Vault's CA: no Ssl_cipher")
	}
	if _, body := d.get(t, "/v1/instances/catalog-mongo", admin); !strings.Contains(body, "held at its last applied state") {
		t.Errorf("the broken file's instance is not held:\n%s", body)
	}

	// The fix.
	files["instances/catalog.yaml"] = e2eInstance("catalog-mongo", "mongodb", "7.0", "enabled")
	fleet.commit("fix catalog.yaml", map[string]string{"instances/catalog.yaml": files["instances/catalog.yaml"]})
	d.do(t, "POST", "/mgmt/instances/catalog-mongo/ssl", admin) // no webhook this time: the admin asks
	waitFor(t, "the fixed file read", func() bool {
		_, body := d.get(t, "/v1/instances/catalog-mongo", admin)
		return strings.Contains(body, `"phase": "RestartRequired"`) && !strings.Contains(body, "held")
	})
	code, out, errOut := reconcile(t, "diff", fleet.dir, "--server", "https://"+api, "--ca-file", caFile, "--token-file", filepath.Join(state, "admin.token"))
	if code != 2 || !strings.Contains(out, "catalog-mongo") {
		t.Errorf("diff --server with mongodb waiting for a restart: %d\n%s%s; want 2, catalog-mongo's TLS not verified", code, out, errOut)
	}

	// SSL off for orders-db: its certificate is revoked in Vault.
	_, body := d.get(t, "/mgmt/instances/orders-db/ssl", admin)
	var show struct {
		SSL struct {
			Serial string `json:"certificate_serial"`
		}
	}
	json.Unmarshal([]byte(body), &show)
	fleet.commit("ssl: disable on orders-db", map[string]string{"instances/orders.yaml": e2eInstance("orders-db", "postgresql", "15", "disabled")})
	d.do(t, "POST", "/mgmt/instances/orders-db/ssl", admin)
	waitFor(t, "orders-db's certificate revoked in Vault", func() bool {
		d.do(t, "POST", "/mgmt/instances/orders-db/ssl", admin)
		sec, err := vs.Client().Logical().ReadWithContext(ctx, "pki/cert/"+show.SSL.Serial)
		if err != nil || sec == nil {
			return false
		}
		n, _ := sec.Data["revocation_time"].(json.Number)
		v, _ := n.Int64()
		return v > 0
	})

	// The canary scan.
	_, metrics := d.get(t, "/metrics", "")
	_, list := d.get(t, "/v1/instances", admin)
	_, diffOut, _ := reconcile(t, "diff", fleet.dir, "-o", "json")
	everything := daemonLogs.String() + metrics + list + diffOut
	for _, l := range agentLogs {
		everything += l.String()
	}
	secretID := strings.TrimSpace(mustRead(t, secretFile))
	for what, secret := range map[string]string{"a private key": "PRIVATE KEY", "the webhook secret": webhookSecret,
		"the admin token": admin, "the Vault secret-id": secretID, "Vault's root token": vs.Token} {
		if strings.Contains(everything, secret) {
			t.Errorf("%s appears in a log, a metric, an API answer or diff output", what)
		}
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func pgRow(t *testing.T, dsn, q string, dest ...any) error {
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

func mariaCipher(t *testing.T, s *datastoretest.Server, ca []byte) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(s.TCPDSN)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	mysql.RegisterTLSConfig("e2e-vault", &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	cfg.TLSConfig = "e2e-vault"
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var k, v string
	if err := db.QueryRowContext(t.Context(), "SHOW SESSION STATUS LIKE 'Ssl_cipher'").Scan(&k, &v); err != nil {
		t.Fatalf("MariaDB TLS client: %v", err)
	}
	return v
}

// postPush announces head on master as GitHub does: a push webhook
// signed with secret.
func postPush(t testing.TB, client *http.Client, api, secret, delivery, head string) {
	t.Helper()
	body := fmt.Sprintf(`{"ref":"refs/heads/master","before":"%s","after":"%s","repository":{"full_name":"platform/fleet"},"commits":[]}`,
		strings.Repeat("0", 40), head)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(body))
	req, _ := http.NewRequest("POST", "https://"+api+"/v1/webhooks/git", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", delivery)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %v %v", resp, err)
	}
	resp.Body.Close()
}
