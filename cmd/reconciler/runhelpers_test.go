package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// testAgent is `reconciler agent` for search-db, a Manticore instance,
// bootstrapped against a daemon and run in process.
type testAgent struct {
	confDir string // manticore.conf and the installed certificate
	tlsAddr string // where the datastore's https listener is expected
	metrics string // http://.../metrics of the agent's metricsAddress
	logs    *syncBuffer
}

// startAgent bootstraps an agent for search-db against d's CA and token
// directory, as an operator would on the host, and runs it until the test
// ends. Its datastore is not running: the agent installs the certificate
// and reports RestartRequired until serveDatastore stands in for searchd.
func startAgent(t *testing.T, d *daemon) *testAgent {
	t.Helper()
	host := t.TempDir()
	a := &testAgent{confDir: filepath.Join(host, "manticore"), tlsAddr: freeAddr(t), logs: &syncBuffer{b: &bytes.Buffer{}}}
	os.Mkdir(a.confDir, 0o755)
	conf, err := os.ReadFile("../../agent/installers/manticore/testdata/manticore.conf")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(a.confDir, "manticore.conf"), conf, 0o644)
	_, port, _ := net.SplitHostPort(a.tlsAddr)
	if code, _, stderr := reconcile(t, "agent", "bootstrap", "search-db", "--datastore", "manticore",
		"--url", "https://"+d.agents, "--ca", filepath.Join(d.dir, "reconciler-ca.pem"),
		"--token-dir", filepath.Join(d.dir, "enrollment-tokens"), "--out", host+"/etc", "--host-dir", host+"/etc",
		"--state-dir", host+"/state", "--config-dir", a.confDir, "--host", "127.0.0.1", "--port", port, "--user", ""); code != 0 {
		t.Fatalf("bootstrap: %d %s", code, stderr)
	}
	metricsAddr := freeAddr(t)
	a.metrics = "http://" + metricsAddr + "/metrics"
	f, err := os.OpenFile(host+"/etc/agent.yaml", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("heartbeat: 1s\nmetricsAddress: " + metricsAddr + "\n")
	f.Close()

	ctx, stop := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{"agent", "--config", host + "/etc/agent.yaml"}, io.Discard, a.logs)
	}()
	t.Cleanup(func() {
		stop()
		if code := <-exited; code != 0 {
			t.Errorf("reconciler agent exited %d after a signal, want 0; logs:\n%s", code, a.logs)
		}
	})
	return a
}

// serveDatastore stands in for searchd restarted by an operator: an https
// listener on the instance's TLS port with the certificate the agent
// installed, which the agent's next check verifies.
func (a *testAgent) serveDatastore(t *testing.T) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(a.confDir, "reconciler-cert.pem"), filepath.Join(a.confDir, "reconciler-key.pem"))
	if err != nil {
		t.Fatalf("load the installed certificate: %v", err)
	}
	ln, err := tls.Listen("tcp", a.tlsAddr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, `{"version": "test"}`)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}
