package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/vault"
)

// reconcilerEndpoint is the reconciler's agent endpoint on a real HTTPS
// listener, with its CA written to a file as an operator would have it.
type reconcilerEndpoint struct {
	server *transport.Server
	url    string
	caFile string
	tokens string
}

func newReconcilerEndpoint(t *testing.T) *reconcilerEndpoint {
	t.Helper()
	dir := t.TempDir()
	e := &reconcilerEndpoint{tokens: filepath.Join(dir, "tokens"), caFile: filepath.Join(dir, "ca.pem")}
	tokens, err := transport.NewTokenDir(e.tokens)
	if err != nil {
		t.Fatal(err)
	}
	e.server = transport.NewServer(transport.WithTokens(tokens))
	https := httptest.NewTLSServer(e.server.Handler())
	t.Cleanup(https.Close)
	e.url = https.URL
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: https.Certificate().Raw})
	if err := os.WriteFile(e.caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

func TestAgentBootstrap(t *testing.T) {
	e := newReconcilerEndpoint(t)
	out := filepath.Join(t.TempDir(), "host")
	code, stdout, stderr := reconcile(t, "agent", "bootstrap", "search-db", "--datastore", "manticore",
		"--url", e.url, "--ca", e.caFile, "--token-dir", e.tokens, "--out", out, "--host-dir", "/etc/reconciler-agent")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "reconciler agent --config /etc/reconciler-agent/agent.yaml") {
		t.Errorf("output does not say how to start the agent:\n%s", stdout)
	}
	cfg, err := agent.LoadConfig(filepath.Join(out, "agent.yaml"))
	if err != nil {
		t.Fatalf("the written config does not load: %v", err)
	}
	if cfg.Instance != "search-db" || cfg.Datastore.Port != 9443 || cfg.Datastore.ConfigDir != "/etc/manticoresearch" ||
		cfg.EnrollmentTokenFile != "/etc/reconciler-agent/enrollment-token" || cfg.Reconciler.URL != e.url {
		t.Errorf("config %+v: want search-db, Manticore's defaults and the token under --host-dir", cfg)
	}
	hostToken, _ := os.ReadFile(filepath.Join(out, "enrollment-token"))
	serverToken, _ := os.ReadFile(filepath.Join(e.tokens, "search-db.token"))
	if len(hostToken) == 0 || !bytes.Equal(hostToken, serverToken) {
		t.Error("the host's token and the reconciler's copy differ")
	}
	if info, _ := os.Stat(filepath.Join(out, "enrollment-token")); info.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", info.Mode().Perm())
	}
	if strings.Contains(stdout+stderr, strings.TrimSpace(string(hostToken))) {
		t.Error("the token was printed")
	}

	t.Run("a used output directory is refused and the token kept", func(t *testing.T) {
		code, _, stderr := reconcile(t, "agent", "bootstrap", "search-db", "--datastore", "manticore",
			"--url", e.url, "--ca", e.caFile, "--token-dir", e.tokens, "--out", out)
		if code != 1 || !strings.Contains(stderr, "choose an empty --out directory") {
			t.Errorf("exit %d, stderr %q; want 1 and the fix", code, stderr)
		}
		if again, _ := os.ReadFile(filepath.Join(e.tokens, "search-db.token")); !bytes.Equal(again, serverToken) {
			t.Error("a refused bootstrap replaced the reconciler's token")
		}
	})
	t.Run("bad flags name the fix", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"search-db", "--datastore", "oracle"}, `--datastore "oracle" is not one of`},
			{[]string{"Search_DB", "--datastore", "mysql"}, "DNS-1123"},
			{[]string{"search-db", "--datastore", "mysql"}, "--url, --ca, --token-dir and --out are all required"},
			{[]string{"search-db", "--datastore", "mysql", "--url", "http://x", "--ca", e.caFile, "--token-dir", e.tokens, "--out", t.TempDir()},
				"must be an https URL"},
		} {
			code, _, stderr := reconcile(t, append([]string{"agent", "bootstrap"}, tc.args...)...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tc.args, code, stderr, tc.want)
			}
		}
	})
}

// TestAgentCommand bootstraps a host, runs `reconciler agent --config` as
// a user would, and sees it enroll, install Manticore's TLS configuration
// and report RestartRequired, with its metrics served.
func TestAgentCommand(t *testing.T) {
	e := newReconcilerEndpoint(t)
	ca := datastoretest.NewCA(t)
	dk, err := ca.Provider.NewKey(t.Context(), "search-db")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.server.Register("search-db", transport.Keys{Current: &transport.Key{Version: 1, Secret: dk.Plaintext}}); err != nil {
		t.Fatal(err)
	}
	host := t.TempDir()
	confDir := filepath.Join(host, "manticore")
	os.Mkdir(confDir, 0o755)
	conf, _ := os.ReadFile("../../agent/installers/manticore/testdata/manticore.conf")
	os.WriteFile(filepath.Join(confDir, "manticore.conf"), conf, 0o644)
	code, _, stderr := reconcile(t, "agent", "bootstrap", "search-db", "--datastore", "manticore", "--url", e.url, "--ca", e.caFile,
		"--token-dir", e.tokens, "--out", host+"/etc", "--host-dir", host+"/etc", "--state-dir", host+"/state",
		"--config-dir", confDir, "--host", "127.0.0.1", "--user", "")
	if code != 0 {
		t.Fatalf("bootstrap: exit %d: %s", code, stderr)
	}
	metricsAddr := freeAddr(t)
	f, _ := os.OpenFile(host+"/etc/agent.yaml", os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "heartbeat: 1s\nmetricsAddress: %s\n", metricsAddr)
	f.Close()

	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	var logs bytes.Buffer
	go func() { exited <- run(ctx, []string{"agent", "--config", host + "/etc/agent.yaml"}, io.Discard, &logs) }()

	cert := ca.Issue(t, "search-db", "127.0.0.1")
	e.server.Publish("search-db", agent.Desired{Generation: 1, SSL: true, Bundle: &installers.Bundle{
		CertPEM: cert.CertPEM, ChainPEM: cert.ChainPEM, Key: cert.Key, Serial: cert.Serial, Fingerprint: cert.Fingerprint, MinVersion: "1.2"}})
	var st agent.Status
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		obs, _ := e.server.Observed("search-db")
		if st = obs.Status; st.Generation == 1 {
			break
		}
	}
	if st.Phase != agent.RestartRequired || st.Serial != cert.Serial || st.KeyVersion != 1 {
		t.Fatalf("status %+v: want RestartRequired with serial %s over key 1", st, cert.Serial)
	}
	edited, _ := os.ReadFile(filepath.Join(confDir, "manticore.conf"))
	if !bytes.Contains(edited, []byte("ssl_cert")) || !bytes.Contains(edited, []byte(":https")) {
		t.Errorf("manticore.conf has no ssl_cert or https listener:\n%s", edited)
	}
	if _, err := os.Stat(host + "/etc/enrollment-token"); !os.IsNotExist(err) {
		t.Errorf("the used token file is still on the host (%v)", err)
	}
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`reconciler_agent_phase{phase="RestartRequired"} 1`, "reconciler_agent_applied_generation 1",
		`reconciler_rpc_messages_total{direction="to_agent",result="ok"}`, "reconciler_agent_certificate_expiry_timestamp_seconds 1."} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	cancel()
	if code := <-exited; code != 0 {
		t.Errorf("agent exit %d after a signal, want 0; logs:\n%s", code, logs.String())
	}
	for _, secret := range []vault.Secret{cert.Key, dk.Plaintext} {
		if bytes.Contains(logs.Bytes(), secret.Bytes()) {
			t.Error("a key reached the agent's log")
		}
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
