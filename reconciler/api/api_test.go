package api

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/reconciler/config"
)

const (
	adminSecret  = "CANARY-admin-token-000000000000000000"
	viewerSecret = "CANARY-viewer-token-11111111111111111"
)

func tokenFile(t *testing.T, secret string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(secret+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func testTokens(t *testing.T) *Tokens {
	t.Helper()
	tk, err := LoadTokens([]config.Token{
		{Name: "platform", Role: "admin", File: tokenFile(t, adminSecret, 0o600)},
		{Name: "ci", Role: "viewer", File: tokenFile(t, viewerSecret, 0o600)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestRequireByRole(t *testing.T) {
	tk := testTokens(t)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		io.WriteString(w, p.Name)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /view", tk.Require(Viewer, echo))
	mux.Handle("POST /act", tk.Require(Admin, echo))
	type result struct {
		Code int
		Body string
	}
	for _, tc := range []struct {
		name, method, path, auth string
		want                     result
	}{
		{"a viewer reads", "GET", "/view", "Bearer " + viewerSecret, result{200, "ci"}},
		{"an admin reads too", "GET", "/view", "Bearer " + adminSecret, result{200, "platform"}},
		{"an admin acts", "POST", "/act", "bearer " + adminSecret, result{200, "platform"}},
		{"a viewer may not act", "POST", "/act", "Bearer " + viewerSecret, result{403, `{"error":"token \"ci\" has role viewer; this needs admin"}`}},
		{"no token", "GET", "/view", "", result{401, ""}},
		{"a wrong token", "GET", "/view", "Bearer " + strings.Repeat("x", 40), result{401, ""}},
		{"basic auth is no bearer", "GET", "/view", "Basic " + viewerSecret, result{401, ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			got := result{w.Code, strings.TrimSpace(w.Body.String())}
			if tc.want.Code == 401 {
				if got.Code != 401 || w.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("got %+v, want 401 with WWW-Authenticate", got)
				}
			} else if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			if strings.Contains(w.Body.String(), "CANARY") {
				t.Error("a token appears in the response")
			}
		})
	}
}

func TestLoadTokensRefusals(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tokens []config.Token
		want   string
	}{
		{"a file others can read", []config.Token{{Name: "ci", Role: "viewer", File: tokenFile(t, viewerSecret, 0o644)}}, "chmod 600"},
		{"a short token", []config.Token{{Name: "ci", Role: "viewer", File: tokenFile(t, "hunter2", 0o600)}}, "want at least 32"},
		{"one token for two names", []config.Token{{Name: "a", Role: "viewer", File: tokenFile(t, viewerSecret, 0o600)},
			{Name: "b", Role: "admin", File: tokenFile(t, viewerSecret, 0o600)}}, `the same token as "a"`},
		{"a missing file", []config.Token{{Name: "ci", Role: "viewer", File: "/nonexistent/token"}}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadTokens(tc.tokens)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "CANARY") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
}

func TestServeHTTPSAndPlainHTTPGets400(t *testing.T) {
	ca := datastoretest.NewCA(t)
	cert := ca.Issue(t, "reconciler", "127.0.0.1")
	pair, err := tls.X509KeyPair(append(cert.CertPEM, cert.ChainPEM...), cert.Key.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	go func() {
		done <- Serve(ctx, ln, h, &tls.Config{Certificates: []tls.Certificate{pair}}, time.Minute, time.Second, nil)
	}()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(t)}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("HTTPS: %d %q", resp.StatusCode, body)
	}
	plain, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the HTTPS port: %d, want 400", plain.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v, want nil", err)
	}
}

// TestHTTP1Only checks that the agents' listener refuses HTTP/2 in ALPN,
// and that the API's offers it.
func TestHTTP1Only(t *testing.T) {
	ca := datastoretest.NewCA(t)
	cert := ca.Issue(t, "reconciler", "127.0.0.1")
	pair, err := tls.X509KeyPair(append(cert.CertPEM, cert.ChainPEM...), cert.Key.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		opts []ServeOption
		want string
	}{
		{"default", nil, "h2"},
		{"HTTP1Only", []ServeOption{HTTP1Only()}, ""},
		{"TLSListener", []ServeOption{HTTP1Only(), TLSListener(func(l net.Listener, cfg *tls.Config) net.Listener {
			return tls.NewListener(l, cfg) // no ALPN: HTTP/1.1
		})}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Serve(ctx, ln, http.NotFoundHandler(), &tls.Config{Certificates: []tls.Certificate{pair}}, time.Minute, time.Second, nil, c.opts...)
			}()
			defer func() { cancel(); <-done }()
			conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool(t), NextProtos: []string{"h2", "http/1.1"}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			got := conn.ConnectionState().NegotiatedProtocol
			if got == "http/1.1" {
				got = ""
			}
			if got != c.want {
				t.Errorf("negotiated %q, want %q", conn.ConnectionState().NegotiatedProtocol, c.want)
			}
		})
	}
}
