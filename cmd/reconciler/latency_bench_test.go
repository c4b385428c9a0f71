package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent/datastoretest"
)

// BenchmarkCommitToVerified measures what a user waits for: from a commit
// to the fleet repository (announced by a signed GitHub webhook) to the
// reconciler reporting the instance's agent verified the change, for one
// PostgreSQL instance on the local provider. Each iteration flips SSL on
// (a certificate issued, sealed, installed, reloaded, verified by a TLS
// handshake) or off (removed, reloaded, revoked), alternately. Reported:
// the median and the worst iteration, in ms/commit.
func BenchmarkCommitToVerified(b *testing.B) {
	pg := datastoretest.PostgreSQL(b, datastoretest.Options{})
	fleet := newFleetRepo(b)
	fleet.commit("the fleet", map[string]string{"instances/orders.yaml": e2eInstance("orders-db", "postgresql", "15", "disabled")})

	state := b.TempDir()
	api, agentsAddr := freeAddr(b), freeAddr(b)
	secret, admin := "webhook-secret-0123456789abcdef", "admin-token-0123456789abcdef0123456789"
	kek := make([]byte, 32)
	for i := range kek {
		kek[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(state, "kek"), []byte(hex.EncodeToString(kek)), 0o600)
	os.WriteFile(filepath.Join(state, "webhook"), []byte(secret), 0o600)
	os.WriteFile(filepath.Join(state, "admin.token"), []byte(admin), 0o600)
	os.WriteFile(filepath.Join(state, "run.yaml"), []byte(fmt.Sprintf(`source:
  git: {url: %q, branch: master, pollInterval: 1h, webhookSecretFile: webhook, cacheDir: cache}
keyProvider:
  local: {kekFile: kek}
listen: {api: %q, agents: %q}
tokens:
  - {name: bench, role: admin, file: admin.token}
`, "file://"+fleet.dir, api, agentsAddr)), 0o644)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go run(ctx, []string{"run", "--config", filepath.Join(state, "run.yaml"), "--log-level", "error"}, io.Discard, io.Discard)
	caFile := filepath.Join(state, "reconciler-ca.pem")
	waitFor(b, "the daemon's CA", func() bool { _, err := os.Stat(caFile); return err == nil })
	pem, _ := os.ReadFile(caFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}

	host := b.TempDir()
	if code, _, stderr := reconcile(b, "agent", "bootstrap", "orders-db", "--datastore", "postgresql", "--version", "15",
		"--url", "https://"+agentsAddr, "--ca", caFile, "--token-dir", filepath.Join(state, "enrollment-tokens"),
		"--out", host+"/etc", "--host-dir", host+"/etc", "--state-dir", host+"/state", "--host", "127.0.0.1",
		"--config-dir", pg.ConfigDir, "--data-dir", pg.DataDir, "--port", fmt.Sprint(pg.Port), "--user", pg.User,
		"--admin-dsn", pg.AdminDSN); code != 0 {
		b.Fatalf("bootstrap: %s", stderr)
	}
	f, _ := os.OpenFile(host+"/etc/agent.yaml", os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("heartbeat: 30s\n")
	f.Close()
	go run(ctx, []string{"agent", "--config", host + "/etc/agent.yaml", "--log-level", "error"}, io.Discard, io.Discard)

	view := func() (string, bool, bool) {
		req, _ := http.NewRequest("GET", "https://"+api+"/v1/instances/orders-db", nil)
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := client.Do(req)
		if err != nil {
			return "", false, false
		}
		defer resp.Body.Close()
		var r struct {
			Instance struct {
				Phase    string
				SSL      bool `json:"ssl"`
				Verified bool `json:"ssl_verified"`
			}
		}
		json.NewDecoder(resp.Body).Decode(&r)
		return r.Instance.Phase, r.Instance.SSL, r.Instance.Verified
	}
	await := func(ssl bool) {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if p, s, v := view(); p == "Active" && s == ssl && v == ssl {
				return
			}
		}
		p, s, v := view()
		b.Fatalf("not Active with ssl=%v in time: %s %v %v", ssl, p, s, v)
	}
	await(false)

	delivery := 0
	var took []time.Duration
	ssl := false
	for b.Loop() {
		ssl = !ssl
		state := map[bool]string{true: "enabled", false: "disabled"}[ssl]
		start := time.Now()
		head := fleet.commit("ssl: "+state, map[string]string{"instances/orders.yaml": e2eInstance("orders-db", "postgresql", "15", state)})
		delivery++
		postPush(b, client, api, secret, fmt.Sprint("bench-", delivery), head)
		await(ssl)
		took = append(took, time.Since(start))
	}
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "median-ms/commit")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms/commit")
}
