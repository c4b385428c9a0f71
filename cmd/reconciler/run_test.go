package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const runSearchInstance = `apiVersion: reconciler/v1
kind: Instance
metadata:
  name: search-db
spec:
  datastore: {type: manticore, version: "6.3"}
  hosts: [127.0.0.1]
  ssl: enabled
  rpcEncryption: enabled
`

// daemon is `reconciler run` started in process on a fleet directory.
type daemon struct {
	dir, api, agents, admin, viewer string
	client                          *http.Client
	logs                            *syncBuffer
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	return startDaemonOn(t, "source:\n  dir: {path: fleet}\n", func(dir string) {
		os.MkdirAll(filepath.Join(dir, "fleet", "instances"), 0o755)
		os.WriteFile(filepath.Join(dir, "fleet", "instances", "search.yaml"), []byte(runSearchInstance), 0o644)
	})
}

// startDaemonOn starts the daemon with the source section source, once
// prepare has laid out its directory.
func startDaemonOn(t *testing.T, source string, prepare func(dir string)) *daemon {
	t.Helper()
	d := &daemon{dir: t.TempDir(), api: freeAddr(t), agents: freeAddr(t), logs: &syncBuffer{b: &bytes.Buffer{}}}
	prepare(d.dir)
	os.WriteFile(filepath.Join(d.dir, "kek"), []byte("CANARYkekCANARYkekCANARYkekCANARYkek0123456=\n"[:44]+"\n"), 0o600)
	d.admin, d.viewer = "CANARY-admin-0123456789abcdef0123456789", "CANARY-viewer-0123456789abcdef012345678"
	os.WriteFile(filepath.Join(d.dir, "admin.token"), []byte(d.admin), 0o600)
	os.WriteFile(filepath.Join(d.dir, "viewer.token"), []byte(d.viewer), 0o600)
	cfg := source + fmt.Sprintf(`keyProvider:
  local: {kekFile: kek}
listen: {api: %q, agents: %q}
tokens:
  - {name: platform, role: admin, file: admin.token}
  - {name: ci, role: viewer, file: viewer.token}
`, d.api, d.agents)
	os.WriteFile(filepath.Join(d.dir, "run.yaml"), []byte(cfg), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"run", "--config", filepath.Join(d.dir, "run.yaml")}, io.Discard, d.logs)
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("reconciler run exited %d after a signal, want 0; logs:\n%s", code, d.logs)
		}
	})
	caFile := filepath.Join(d.dir, "reconciler-ca.pem")
	waitFor(t, "the daemon to write its CA", func() bool { _, err := os.Stat(caFile); return err == nil })
	pem, _ := os.ReadFile(caFile)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	d.client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	waitFor(t, "the daemon to be ready", func() bool { code, _ := d.get(t, "/readyz", ""); return code == 200 })
	return d
}

func (d *daemon) get(t *testing.T, path, token string) (int, string) {
	return d.do(t, http.MethodGet, path, token)
}

func (d *daemon) do(t *testing.T, method, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "https://"+d.api+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestRunServesTheFleetAndDrivesAnAgent starts the daemon on a one-file
// fleet, bootstraps an agent for it against the daemon's own CA and token
// directory, and follows the instance through the API and the metrics.
func TestRunServesTheFleetAndDrivesAnAgent(t *testing.T) {
	d := startDaemon(t)
	code, body := d.get(t, "/v1/instances/search-db", d.viewer)
	if code != 200 || !strings.Contains(body, `"phase": "Unreachable"`) || strings.Contains(body, "encrypted_rpc_messaging") {
		t.Fatalf("viewer GET: %d %s; want Unreachable without the admin-only field", code, body)
	}

	// A host: bootstrap against the daemon, then the agent.
	a := startAgent(t, d)
	confDir := a.confDir

	var view map[string]any
	waitFor(t, "search-db to report RestartRequired", func() bool {
		_, body := d.get(t, "/v1/instances/search-db", d.admin)
		var r struct{ Instance map[string]any }
		json.Unmarshal([]byte(body), &r)
		view = r.Instance
		return view["phase"] == "RestartRequired"
	})
	if rpc, _ := view["encrypted_rpc_messaging"].(map[string]any); rpc == nil || rpc["key_version"] != 1.0 {
		t.Errorf("admin view %v: want encrypted_rpc_messaging with key version 1", view)
	}
	edited, _ := os.ReadFile(filepath.Join(confDir, "manticore.conf"))
	if !bytes.Contains(edited, []byte("ssl_cert")) {
		t.Error("the agent did not write Manticore's TLS configuration")
	}

	for _, tc := range []struct {
		method, path, token string
		code                int
		want                string
	}{
		{"GET", "/mgmt/instances/search-db/ssl", d.admin, 200, `"enabled": true`},
		{"POST", "/mgmt/instances/search-db/ssl", d.admin, 202, `"ssl"`},
		{"GET", "/mgmt/instances/search-db/ssl", d.viewer, 403, "needs admin"},
		{"GET", "/v1/instances", "", 401, "bearer token"},
		{"GET", "/v1/instances/nobody", d.viewer, 404, "no instance"},
		{"GET", "/healthz", "", 200, "ok"},
	} {
		code, body := d.do(t, tc.method, tc.path, tc.token)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s; want %d with %q", tc.method, tc.path, code, body, tc.code, tc.want)
		}
	}
	resp, err := http.Get("http://" + d.api + "/healthz")
	if err != nil || resp.StatusCode != 400 {
		t.Errorf("plain HTTP to the API: %v %v, want 400", resp.StatusCode, err)
	}
	_, metrics := d.get(t, "/metrics", "")
	for _, want := range []string{`reconciler_encryption_coverage_ratio{datastore="manticore"} 0`,
		`reconciler_instance_phase{phase="RestartRequired"} 1`, `reconciler_agent_last_seen_timestamp_seconds{instance="search-db"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	all := d.logs.String() + a.logs.String() + metrics + body
	if strings.Contains(all, "CANARY") {
		t.Error("a token or the KEK reached a log, the metrics or an API answer")
	}
	if strings.Contains(all, "PRIVATE KEY") {
		t.Error("a private key reached a log, the metrics or an API answer")
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
