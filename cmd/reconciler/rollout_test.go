package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reconciler-dev/reconciler/vault/hashicorp"
	"github.com/reconciler-dev/reconciler/vault/hashicorp/vaultservertest"
)

// TestMain lets a test run this program in a child process
// (RECONCILER_TEST_MAIN=1 and the command line), one it can SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("RECONCILER_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

// testPostgresDSN is the PostgreSQL server the tests create their
// databases on: the machine's own, as CI starts it.
func testPostgresDSN() string {
	if dsn := os.Getenv("RECONCILER_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// freshDatabase creates an empty database for the test and drops it after.
func freshDatabase(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testPostgresDSN())
	if err != nil {
		t.Fatalf("connect to PostgreSQL at %s: %v (start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start)", testPostgresDSN(), err)
	}
	defer admin.Close(ctx)
	b := make([]byte, 6)
	rand.Read(b)
	name := "reconciler_cmd_" + hex.EncodeToString(b)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, testPostgresDSN())
		if err != nil {
			return
		}
		defer c.Close(ctx)
		c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	cfg, _ := pgx.ParseConfig(testPostgresDSN())
	return fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Host, cfg.Port, name)
}

// rollout is a fleet of Manticore instances on Vault, each with a real
// agent (the real installer, a stand-in searchd that serves whatever
// certificate is installed), for tests that break things while SSL is
// turned on across the fleet.
type rollout struct {
	t *testing.T
	// children is how many agents, the first ones, run as child processes
	// of their own (killable); the others run in this process.
	children int
	agents   []*agentProcess
	vault    *vaultservertest.Server
	shared   string // the fleet, the Vault AppRole secret, the admin token, the tokens
	names    []string
	admin    string
	roleID   string
	caFile   string
	client   *http.Client
}

func newRollout(t *testing.T, instances int, vault *vaultservertest.Server) *rollout {
	t.Helper()
	r := &rollout{t: t, vault: vault, shared: t.TempDir(), admin: "CANARY-admin-token-0123456789abcdef0123"}
	boot, err := hashicorp.Bootstrap(t.Context(), vault.Client(), hashicorp.BootstrapOptions{SecretIDFile: filepath.Join(r.shared, "vault-secret-id")})
	if err != nil {
		t.Fatal(err)
	}
	r.roleID = boot.RoleID
	os.WriteFile(filepath.Join(r.shared, "admin.token"), []byte(r.admin), 0o600)
	os.MkdirAll(filepath.Join(r.shared, "fleet", "instances"), 0o755)
	for i := range instances {
		r.names = append(r.names, fmt.Sprintf("search-%03d", i))
	}
	r.writeFleet("disabled")
	chain, err := vault.Client().Logical().ReadRawWithContext(t.Context(), "pki/ca_chain")
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := io.ReadAll(chain.Body)
	chain.Body.Close()
	r.caFile = filepath.Join(r.shared, "vault-ca.pem")
	os.WriteFile(r.caFile, ca, 0o644)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	r.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	return r
}

// writeFleet sets ssl on every instance file.
func (r *rollout) writeFleet(ssl string) {
	for _, name := range r.names {
		os.WriteFile(filepath.Join(r.shared, "fleet", "instances", name+".yaml"), []byte(e2eInstance(name, "manticore", "6.3", ssl)), 0o644)
	}
}

// config is a daemon configuration on the rollout's fleet and Vault;
// store is its store section, extra any further YAML.
func (r *rollout) config(api, agents, store, extra string) string {
	return fmt.Sprintf(`source:
  dir: {path: %q, pollInterval: 1s}
keyProvider:
  default: vault
  vault:
    address: %q
    appRole: {roleID: %q, secretIDFile: %q}
store:
%s
listen: {api: %q, agents: %q}
agents: {tokenDir: %q}
reconcile: {concurrency: 2}
tokens:
  - {name: platform, role: admin, file: %q}
%s`, filepath.Join(r.shared, "fleet"), r.vault.Addr, r.roleID, filepath.Join(r.shared, "vault-secret-id"), store, api, agents,
		filepath.Join(r.shared, "tokens"), filepath.Join(r.shared, "admin.token"), extra)
}

// process is `reconciler run` in a child process of its own.
type process struct {
	t          *testing.T
	id         string
	api        string
	agents     string
	configFile string
	logs       *syncBuffer
	cmd        *exec.Cmd
	exited     chan struct{}
}

// startProcess starts `reconciler run` on cfg in a child process, stopped
// at the end of the test.
func (r *rollout) startProcess(id, api, agents, cfg string) *process {
	p := &process{t: r.t, id: id, api: api, agents: agents, configFile: filepath.Join(r.t.TempDir(), "run.yaml"),
		logs: &syncBuffer{b: &bytes.Buffer{}}}
	os.WriteFile(p.configFile, []byte(cfg), 0o644)
	p.start()
	r.t.Cleanup(func() {
		p.stop()
		if r.t.Failed() {
			r.t.Logf("%s logs:\n%s", p.id, p.logs)
		}
	})
	return p
}

func (p *process) start() {
	p.cmd = exec.Command(os.Args[0], "run", "--config", p.configFile)
	p.cmd.Env = append(os.Environ(), "RECONCILER_TEST_MAIN=1")
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.logs
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	exited, cmd := make(chan struct{}), p.cmd
	go func() { cmd.Wait(); close(exited) }()
	p.exited = exited
}

// kill SIGKILLs the process and waits for it to be gone.
func (p *process) kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// stop interrupts the process, and kills it if it does not stop.
func (p *process) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.kill()
	}
}

// leading reports whether the process's metrics say it leads.
func (r *rollout) leading(p *process) bool {
	resp, err := r.client.Get("https://" + p.api + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return bytes.Contains(body, []byte("\nreconciler_leader 1\n"))
}

// startAgents bootstraps and runs every instance's agent in this
// process, the i-th on endpoints(i): its URL, then its fallbacks.
func (r *rollout) startAgents(endpoints func(i int) []string) {
	for i, name := range r.names {
		host := r.t.TempDir()
		conf := filepath.Join(host, "manticore")
		os.Mkdir(conf, 0o755)
		os.WriteFile(filepath.Join(conf, "manticore.conf"), []byte(mustRead(r.t, "../../agent/installers/manticore/testdata/manticore.conf")), 0o644)
		addr := freeAddr(r.t)
		_, port, _ := net.SplitHostPort(addr)
		args := []string{"agent", "bootstrap", name, "--datastore", "manticore", "--version", "6.3",
			"--ca", r.caFile, "--token-dir", filepath.Join(r.shared, "tokens"),
			"--out", host + "/etc", "--host-dir", host + "/etc", "--state-dir", host + "/state", "--config-dir", conf,
			"--host", "127.0.0.1", "--port", port, "--user", ""}
		for j, e := range endpoints(i) {
			flag := "--fallback-url"
			if j == 0 {
				flag = "--url"
			}
			args = append(args, flag, "https://"+e)
		}
		if code, _, stderr := reconcile(r.t, args...); code != 0 {
			r.t.Fatalf("bootstrap %s: %s", name, stderr)
		}
		f, _ := os.OpenFile(host+"/etc/agent.yaml", os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("heartbeat: 1s\n")
		f.Close()
		standIn(r.t, addr, conf)
		if i < r.children {
			a := &agentProcess{t: r.t, config: host + "/etc/agent.yaml", logs: &syncBuffer{b: &bytes.Buffer{}}}
			a.start()
			r.t.Cleanup(func() {
				a.kill()
				if r.t.Failed() {
					r.t.Logf("the agent of %s (a child process):\n%s", name, a.logs)
				}
			})
			r.agents = append(r.agents, a)
			continue
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan int, 1)
		logs := &syncBuffer{b: &bytes.Buffer{}}
		go func() { done <- run(ctx, []string{"agent", "--config", host + "/etc/agent.yaml"}, io.Discard, logs) }()
		r.t.Cleanup(func() {
			stop()
			<-done
			if r.t.Failed() && i == 0 {
				r.t.Logf("the agent of %s:\n%s", name, logs)
			}
		})
	}
}

// agentProcess is `reconciler agent` in a child process of its own.
type agentProcess struct {
	t      *testing.T
	config string
	logs   *syncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
}

func (a *agentProcess) start() {
	a.cmd = exec.Command(os.Args[0], "agent", "--config", a.config)
	a.cmd.Env = append(os.Environ(), "RECONCILER_TEST_MAIN=1")
	a.cmd.Stdout, a.cmd.Stderr = io.Discard, a.logs
	if err := a.cmd.Start(); err != nil {
		a.t.Fatal(err)
	}
	exited, cmd := make(chan struct{}), a.cmd
	go func() { cmd.Wait(); close(exited) }()
	a.exited = exited
}

// kill SIGKILLs the agent, wherever it is in its work.
func (a *agentProcess) kill() {
	a.cmd.Process.Kill()
	<-a.exited
}

// standIn serves HTTPS on addr with whatever certificate the agent
// installed in dir at the moment of each handshake, as a searchd that
// reloads it.
func standIn(t *testing.T, addr, dir string) {
	ln, err := tls.Listen("tcp", addr, &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, "reconciler-cert.pem"), filepath.Join(dir, "reconciler-key.pem"))
		return &c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	// searchd's https listener answers HTTP, which the agent checks.
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("{}")) }))
}

// state is an instance as the API shows it.
type state struct {
	Phase    string
	Verified bool `json:"ssl_verified"`
}

// states asks p (a follower forwards) for the fleet; nil when p does not
// answer.
func (r *rollout) states(p *process) map[string]state {
	req, _ := http.NewRequest("GET", "https://"+p.api+"/v1/instances", nil)
	req.Header.Set("Authorization", "Bearer "+r.admin)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var list struct {
		Instances []struct {
			Name string
			state
		}
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&list) != nil {
		return nil
	}
	out := map[string]state{}
	for _, in := range list.Instances {
		out[in.Name] = in.state
	}
	return out
}

// count is how many instances p shows in a state ok accepts.
func (r *rollout) count(p *process, ok func(state) bool) int {
	n := 0
	for _, s := range r.states(p) {
		if ok(s) {
			n++
		}
	}
	return n
}

func reporting(s state) bool { return s.Phase == "RestartRequired" || s.Phase == "Active" }
func verified(s state) bool  { return s.Phase == "Active" && s.Verified }

// checkIssuance fails the test for an instance without a certificate in
// Vault, and when the instances got more than allowance certificates
// beyond one each.
func (r *rollout) checkIssuance(allowance int) {
	r.t.Helper()
	issued := vaultCertificates(r.t, r.vault)
	extra := 0
	for _, name := range r.names {
		if n := issued[name]; n == 0 {
			r.t.Errorf("%s: no certificate in Vault", name)
		} else {
			extra += n - 1
		}
	}
	if extra > allowance {
		r.t.Errorf("%d certificates beyond one per instance, more than the %d the faults can explain", extra, allowance)
	}
	r.t.Logf("certificates issued: %d for %d instances", len(r.names)+extra, len(r.names))
}

// vaultCertificates counts the certificates Vault's PKI issued, by
// common name.
func vaultCertificates(t *testing.T, vs *vaultservertest.Server) map[string]int {
	t.Helper()
	list, err := vs.Client().Logical().List("pki/certs")
	if err != nil || list == nil {
		t.Fatalf("list Vault's certificates: %v", err)
	}
	keys, _ := list.Data["keys"].([]any)
	out := map[string]int{}
	for _, k := range keys {
		sec, err := vs.Client().Logical().Read("pki/cert/" + k.(string))
		if err != nil || sec == nil {
			continue
		}
		block, _ := pem.Decode([]byte(sec.Data["certificate"].(string)))
		if block == nil {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil || c.IsCA {
			continue
		}
		out[strings.TrimSpace(c.Subject.CommonName)]++
	}
	return out
}
