package transport

import (
	"bytes"
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/vault"
)

// key returns a distinct 32-byte key per fill byte.
func key(version uint32, fill byte) *Key {
	return &Key{Version: version, Secret: vault.Secret(bytes.Repeat([]byte{fill}, 32))}
}

// middlebox sits between the agents and the server, as an attacker on
// the network would: it records every request and reply body and lets a
// test rewrite either.
type middlebox struct {
	next http.Handler

	mu        sync.Mutex
	requests  [][]byte
	replies   [][]byte
	rewriteRq func(path string, body []byte) []byte
	rewriteRp func(path string, body []byte) []byte
}

func (m *middlebox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	m.requests = append(m.requests, bytes.Clone(body))
	rq, rp := m.rewriteRq, m.rewriteRp
	m.mu.Unlock()
	if rq != nil {
		body = rq(r.URL.Path, body)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	rec := httptest.NewRecorder()
	m.next.ServeHTTP(rec, r)
	reply := rec.Body.Bytes()
	m.mu.Lock()
	m.replies = append(m.replies, bytes.Clone(reply))
	m.mu.Unlock()
	if rp != nil && rec.Code == http.StatusOK {
		reply = rp(r.URL.Path, reply)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(reply)
}

func (m *middlebox) lastRequest() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests[len(m.requests)-1]
}

func (m *middlebox) lastReply() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.replies[len(m.replies)-1]
}

// fixture is a server behind a middlebox on a real HTTPS listener, and
// the directories an agent on a host would use.
type fixture struct {
	t      *testing.T
	server *Server
	box    *middlebox
	https  *httptest.Server
	roots  *x509.CertPool
	tokens *TokenDir
	logs   *bytes.Buffer // both sides' logs, at debug level
	reg    *prometheus.Registry
}

func newFixture(t *testing.T, opts ...ServerOption) *fixture {
	t.Helper()
	f := &fixture{t: t, logs: &bytes.Buffer{}, reg: prometheus.NewRegistry()}
	var err error
	f.tokens, err = NewTokenDir(filepath.Join(t.TempDir(), "tokens"))
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]ServerOption{WithTokens(f.tokens), WithServerLogger(f.logger()), WithServerRegisterer(f.reg)}, opts...)
	f.server = NewServer(opts...)
	f.box = &middlebox{next: f.server.Handler()}
	f.https = httptest.NewTLSServer(f.box)
	t.Cleanup(f.https.Close)
	f.roots = x509.NewCertPool()
	f.roots.AddCert(f.https.Certificate())
	return f
}

var logMu sync.Mutex

type lockedWriter struct{ w io.Writer }

func (l lockedWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	return l.w.Write(p)
}

func (f *fixture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(lockedWriter{f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// hostDirs are an agent host's state directory and token file.
type hostDirs struct{ state, token string }

// host returns a fresh host: a state directory and, when token is set,
// an enrollment token file holding it.
func (f *fixture) host(token vault.Secret) hostDirs {
	root := f.t.TempDir()
	h := hostDirs{filepath.Join(root, "state"), filepath.Join(root, "token")}
	if token != nil {
		if err := os.WriteFile(h.token, FormatToken(token), 0o600); err != nil {
			f.t.Fatal(err)
		}
	}
	return h
}

func (f *fixture) client(name string, h hostDirs, opts ...ClientOption) *Client {
	f.t.Helper()
	c, err := NewClient(ClientConfig{Instance: name, URL: f.https.URL, RootCAs: f.roots,
		StateDir: h.state, TokenFile: h.token, Wait: 50 * time.Millisecond},
		append([]ClientOption{WithClientLogger(f.logger())}, opts...)...)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// bootstrapped issues a token for name, registered (if register) without
// a key, and returns a client that holds the token and has not polled.
func (f *fixture) bootstrapped(name string, register bool) *Client {
	f.t.Helper()
	if register {
		if err := f.server.Register(name, Keys{}); err != nil {
			f.t.Fatal(err)
		}
	}
	token, err := f.tokens.Issue(name)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.client(name, f.host(token))
}

// enrolled registers name with k, issues a token and returns a client
// that has enrolled with it and polled once.
func (f *fixture) enrolled(name string, k *Key) *Client {
	f.t.Helper()
	if err := f.server.Register(name, Keys{Current: k}); err != nil {
		f.t.Fatal(err)
	}
	token, err := f.tokens.Issue(name)
	if err != nil {
		f.t.Fatal(err)
	}
	c := f.client(name, f.host(token))
	if _, err := c.Poll(context.Background(), agent.Status{Instance: name, Phase: agent.Pending}); err != nil {
		f.t.Fatalf("first poll of %s: %v", name, err)
	}
	return c
}

// post sends body to path as an attacker would, without a client.
func (f *fixture) post(path string, body []byte) (int, string) {
	f.t.Helper()
	resp, err := f.https.Client().Post(f.https.URL+path, "application/octet-stream", bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(bytes.TrimSpace(text))
}

func testBundle(serial string, keyPEM []byte) *installers.Bundle {
	return &installers.Bundle{CertPEM: []byte("-----BEGIN CERTIFICATE-----\n"), ChainPEM: []byte("chain"),
		Key: vault.Secret(keyPEM), Serial: serial, Fingerprint: "fp-" + serial, MinVersion: "1.2", RequireSecureTransport: true}
}
