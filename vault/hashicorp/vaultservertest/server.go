// Package vaultservertest starts real Vault servers for tests: a dev server
// (in memory, unsealed, known root token) or a file-backed one that keeps
// its state across a restart. The binary is the one `make vault` builds
// from tools/vault; tests fail, not skip, without it.
package vaultservertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Binary is the real Vault server built by `make vault` (from the
// tools/vault module). The tests need it: they fail, not skip, without it.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("RECONCILER_VAULT_BIN"); p != "" {
		return p
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(cache, "reconciler", "vault-1.21.0")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no Vault server binary at %s: run `make vault` (or set RECONCILER_VAULT_BIN)", p)
	}
	return p
}

// Server is a real Vault server process on a loopback port.
type Server struct {
	t       testing.TB
	bin     string
	Addr    string // http://127.0.0.1:port
	Token   string // root token
	dir     string
	args    []string
	unseal  string // unseal key, for a file-backed server
	cmd     *exec.Cmd
	logFile string
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

func randomToken(t testing.TB) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "root-" + hex.EncodeToString(b)
}

// Dev starts `vault server -dev`: in memory, unsealed, with a known
// root token.
func Dev(t testing.TB) *Server {
	t.Helper()
	hostport := freeAddr(t)
	s := &Server{t: t, bin: Binary(t), Addr: "http://" + hostport, Token: randomToken(t), dir: t.TempDir()}
	s.args = []string{"server", "-dev", "-dev-root-token-id=" + s.Token, "-dev-listen-address=" + hostport, "-dev-no-store-token"}
	s.start()
	return s
}

// File starts a Vault with file storage, initialises and unseals it:
// unlike a dev server it keeps its state across restart.
func File(t testing.TB) *Server {
	t.Helper()
	hostport := freeAddr(t)
	s := &Server{t: t, bin: Binary(t), Addr: "http://" + hostport, dir: t.TempDir()}
	config := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address     = %q
  tls_disable = 1
}
disable_mlock = true
api_addr = %q
`, filepath.Join(s.dir, "data"), hostport, s.Addr)
	cfgFile := filepath.Join(s.dir, "vault.hcl")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s.args = []string{"server", "-config=" + cfgFile}
	s.start()
	c := s.Client()
	init, err := c.Sys().InitWithContext(context.Background(), &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("init vault: %v", err)
	}
	s.Token, s.unseal = init.RootToken, init.Keys[0]
	s.unsealNow()
	return s
}

func (s *Server) start() {
	s.t.Helper()
	s.logFile = filepath.Join(s.dir, fmt.Sprintf("vault-%d.log", time.Now().UnixNano()))
	logf, err := os.Create(s.logFile)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "VAULT_LOG_LEVEL=warn", "HOME="+s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start vault: %v", err)
	}
	logf.Close()
	s.cmd = cmd
	s.t.Cleanup(s.stop)
	// Healthy enough: the HTTP listener answers (sealed or not).
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.Addr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(s.logFile)
			s.t.Fatalf("vault did not start listening on %s: %v\n%s", s.Addr, err, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	s.cmd.Wait()
	s.cmd = nil
}

// Restart kills Vault and starts it again after down, unsealed.
func (s *Server) Restart(down time.Duration) {
	s.t.Helper()
	s.stop()
	time.Sleep(down)
	s.start()
	s.unsealNow()
}

func (s *Server) unsealNow() {
	s.t.Helper()
	if s.unseal == "" {
		return
	}
	if _, err := s.Client().Sys().UnsealWithContext(context.Background(), s.unseal); err != nil {
		s.t.Fatalf("unseal vault: %v", err)
	}
}

// Client is an admin client with the root token.
func (s *Server) Client() *api.Client {
	s.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	c, err := api.NewClient(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	c.SetToken(s.Token)
	return c
}
