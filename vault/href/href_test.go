package href_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/reconciler-dev/reconciler/vault"
	"github.com/reconciler-dev/reconciler/vault/href"
	"github.com/reconciler-dev/reconciler/vault/inline"
	"github.com/reconciler-dev/reconciler/vault/inline/inlinetest"
	"github.com/reconciler-dev/reconciler/vault/vaulttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// canary is the bearer token the tests use: it must appear in no error.
const canary = "canary-token-3f9c1e7b2d"

// server serves an instance's files under /pki/<instance>/ and the fleet
// CA at /pki/ca.crt, like a team's certificate store.
type server struct {
	*httptest.Server
	mu     sync.Mutex
	routes map[string]http.HandlerFunc
	seen   []request
}

// request is what the server saw of one request.
type request struct {
	Path, Authorization string
	ClientCert          bool
}

func newServer(t *testing.T, routes map[string]http.HandlerFunc, configure func(*httptest.Server)) *server {
	t.Helper()
	s := &server{routes: routes}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, request{Path: r.URL.EscapedPath(), Authorization: r.Header.Get("Authorization"), ClientCert: r.TLS != nil && len(r.TLS.PeerCertificates) > 0})
		h, ok := s.routes[r.URL.EscapedPath()]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		h(w, r)
	}))
	// Refused handshakes are what some tests are about, not news.
	s.Config.ErrorLog = log.New(io.Discard, "", 0)
	if configure != nil {
		configure(s.Server)
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.seen)
}

// rootPEM is the certificate the server presents, to trust it.
func (s *server) rootPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

// urls returns the options for the server's per-instance files.
func (s *server) urls() href.Option {
	return href.WithURLs(s.URL+"/pki/{instance}/tls.crt", s.URL+"/pki/{instance}/tls.key", s.URL+"/pki/{instance}/ca.crt")
}

func serve(data []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { w.Write(data) }
}

// withToken serves h to requests that carry the canary token only.
func withToken(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+canary {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		h(w, r)
	}
}

// instanceRoutes serves f as the instance's files, the key behind the
// canary token, and the CA's root as the fleet bundle.
func instanceRoutes(instance string, f inlinetest.Files) map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"/pki/" + instance + "/tls.crt": serve(f.Cert),
		"/pki/" + instance + "/tls.key": withToken(serve(f.Key)),
		"/pki/" + instance + "/ca.crt":  serve(f.CA),
		"/pki/ca.crt":                   serve(f.CA),
	}
}

func newIssuer(t *testing.T, opts ...href.Option) *href.Issuer {
	t.Helper()
	iss, err := href.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(iss.CloseIdleConnections)
	return iss
}

func TestContract(t *testing.T) {
	ca := inlinetest.NewCA("orders")
	req := vaulttest.DefaultRequest()
	f := ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil).Files()
	s := newServer(t, instanceRoutes(req.Instance, f), nil)

	t.Run("fleet CA bundle from its own URL", func(t *testing.T) {
		iss := newIssuer(t, s.urls(), href.WithRootCAs(s.rootPEM()), href.WithBearerToken(vault.Secret(canary)), href.WithCABundleURL(s.URL+"/pki/ca.crt"))
		vaulttest.TestIssuer(t, iss, vaulttest.IssuerOptions{Static: true, NoRSA: true, CanRevoke: false})
	})
	t.Run("fleet CA bundle given in the configuration", func(t *testing.T) {
		iss := newIssuer(t, s.urls(), href.WithRootCAs(s.rootPEM()), href.WithBearerToken(vault.Secret(canary)), href.WithCABundle(ca.RootPEM()))
		vaulttest.TestIssuer(t, iss, vaulttest.IssuerOptions{Static: true, NoRSA: true, CanRevoke: false})
	})
	t.Run("one CA URL for every instance is the fleet's", func(t *testing.T) {
		iss := newIssuer(t, href.WithURLs(s.URL+"/pki/{instance}/tls.crt", s.URL+"/pki/{instance}/tls.key", s.URL+"/pki/ca.crt"),
			href.WithRootCAs(s.rootPEM()), href.WithBearerToken(vault.Secret(canary)))
		vaulttest.TestIssuer(t, iss, vaulttest.IssuerOptions{Static: true, NoRSA: true, CanRevoke: false})
	})
}

func TestIssue(t *testing.T) {
	ca := inlinetest.NewCA("orders")
	req := vaulttest.DefaultRequest()
	good := ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil).Files()
	otherCA := inlinetest.NewCA("unrelated")

	tests := []struct {
		name string
		// routes change the good instance's routes; a nil handler removes one.
		routes    map[string]http.HandlerFunc
		configure func(*httptest.Server)
		// opts come after the URLs, the server's root and the token.
		opts     []href.Option
		instance string
		// want is the error, {url} standing for the server's URL; empty
		// means success unless wantPrefix is set.
		want       string
		wantPrefix string
		denied     bool // the error wraps vault.ErrDenied
		is         error
	}{
		{name: "the three files, the token sent with the key download only"},
		{
			name: "a served key that does not match the certificate",
			routes: map[string]http.HandlerFunc{
				"/pki/orders-db/tls.crt": serve(ca.Sign(inlinetest.Template(req.Instance, "orders-db.db.internal"), nil).CertPEM()),
			},
			want:   "orders-db/tls.key from {url}/pki/orders-db/tls.key does not match the certificate in orders-db/tls.crt from {url}/pki/orders-db/tls.crt; put the private key that certificate was issued for there, or reissue the certificate for this key",
			denied: true,
		},
		{
			name: "a missing SAN names the URL",
			routes: func() map[string]http.HandlerFunc {
				f := ca.Sign(inlinetest.Template(req.Instance, "orders-db.db.internal"), nil).Files()
				return map[string]http.HandlerFunc{"/pki/orders-db/tls.crt": serve(f.Cert), "/pki/orders-db/tls.key": withToken(serve(f.Key))}
			}(),
			want:   "orders-db/tls.crt from {url}/pki/orders-db/tls.crt does not cover host 10.0.4.17 (SANs: orders-db.db.internal); reissue it with that SAN",
			denied: true,
		},
		{
			name:   "untrusted server certificate",
			opts:   []href.Option{href.WithRootCAs(otherCA.RootPEM())},
			want:   "download orders-db/tls.crt from {url}/pki/orders-db/tls.crt: denied by the key provider: the server's certificate is not trusted: tls: failed to verify certificate: x509: certificate signed by unknown authority; give its CA to WithRootCAs, or fix the server's certificate",
			denied: true,
		},
		{
			name:   "404 on the certificate",
			routes: map[string]http.HandlerFunc{"/pki/orders-db/tls.crt": nil},
			want:   "orders-db/tls.crt from {url}/pki/orders-db/tls.crt was not found (404 Not Found); put the file on the server, or fix the URL template (WithURLs)",
			denied: true,
		},
		{
			name:   "500 on the key, whose body holds the key",
			routes: map[string]http.HandlerFunc{"/pki/orders-db/tls.key": failWith(http.StatusInternalServerError, good.Key)},
			want:   "download orders-db/tls.key from {url}/pki/orders-db/tls.key: the server answered 500 Internal Server Error",
		},
		{
			name:   "403 on the key without the token",
			opts:   []href.Option{href.WithBearerToken(vault.Secret("not-the-token"))},
			want:   "orders-db/tls.key from {url}/pki/orders-db/tls.key was refused (403 Forbidden); check the bearer token or client certificate the key download sends (WithBearerToken, WithClientCertificate)",
			denied: true,
		},
		{
			name:   "oversize body of unknown length",
			routes: map[string]http.HandlerFunc{"/pki/orders-db/ca.crt": serve(append(append([]byte{}, good.CA...), strings.Repeat("#", inline.MaxFileSize)...))},
			want:   "orders-db/ca.crt from {url}/pki/orders-db/ca.crt is over the 65536-byte limit; check the URL serves the PEM file, or raise the limit with WithMaxSize",
			denied: true,
		},
		{
			name: "oversize body announced by Content-Length",
			routes: map[string]http.HandlerFunc{"/pki/orders-db/tls.crt": func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(2000))
				w.Write(make([]byte, 2000))
			}},
			opts:   []href.Option{href.WithMaxSize(1000)},
			want:   "orders-db/tls.crt from {url}/pki/orders-db/tls.crt is over the 1000-byte limit; check the URL serves the PEM file, or raise the limit with WithMaxSize",
			denied: true,
		},
		{
			name: "slow server",
			routes: map[string]http.HandlerFunc{"/pki/orders-db/tls.crt": func(_ http.ResponseWriter, r *http.Request) {
				<-r.Context().Done()
				// Returning would answer 200 with an empty body, which
				// can reach the client before its own timeout error.
				panic(http.ErrAbortHandler)
			}},
			opts: []href.Option{href.WithTimeout(100 * time.Millisecond)},
			// What follows is net/http's, and depends on how the
			// connection ended.
			wantPrefix: "download orders-db/tls.crt from {url}/pki/orders-db/tls.crt: no answer within 100ms: ",
			is:         context.DeadlineExceeded,
		},
		{
			name: "redirect to http:// refused",
			routes: map[string]http.HandlerFunc{"/pki/orders-db/tls.crt": func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "http://certs.example/orders-db/tls.crt", http.StatusFound)
			}},
			want: "download orders-db/tls.crt from {url}/pki/orders-db/tls.crt: redirect to http://certs.example/orders-db/tls.crt refused: not https://",
		},
		{
			name: "the key download presents the client certificate",
			routes: map[string]http.HandlerFunc{"/pki/orders-db/tls.key": func(w http.ResponseWriter, r *http.Request) {
				if len(r.TLS.PeerCertificates) == 0 {
					http.Error(w, "no client certificate", http.StatusUnauthorized)
					return
				}
				w.Write(good.Key)
			}},
			configure: func(s *httptest.Server) {
				s.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
			},
			opts: []href.Option{href.WithClientCertificate(clientCert(ca))},
		},
		{
			name: "a key download without the client certificate is refused",
			routes: map[string]http.HandlerFunc{"/pki/orders-db/tls.key": func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no client certificate", http.StatusUnauthorized)
			}},
			want:   "orders-db/tls.key from {url}/pki/orders-db/tls.key was refused (401 Unauthorized); check the bearer token or client certificate the key download sends (WithBearerToken, WithClientCertificate)",
			denied: true,
		},
		{
			name:     "path traversal in the instance name, refused before any request",
			instance: "..",
			want:     `denied by the key provider: instance name ".." cannot name a directory: it must be non-empty and hold no "/", "\" or ".."; rename the instance`,
			denied:   true,
		},
		{
			name:     "the instance name is path-escaped",
			instance: "orders db",
			want:     "orders db/tls.crt from {url}/pki/orders%20db/tls.crt was not found (404 Not Found); put the file on the server, or fix the URL template (WithURLs)",
			denied:   true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			routes := instanceRoutes(req.Instance, good)
			for p, h := range tt.routes {
				if h == nil {
					delete(routes, p)
				} else {
					routes[p] = h
				}
			}
			s := newServer(t, routes, tt.configure)
			opts := append([]href.Option{s.urls(), href.WithRootCAs(s.rootPEM()), href.WithBearerToken(vault.Secret(canary))}, tt.opts...)
			iss := newIssuer(t, opts...)
			r := req
			if tt.instance != "" {
				r.Instance = tt.instance
			}
			c, err := iss.Issue(context.Background(), r)
			if tt.want == "" && tt.wantPrefix == "" {
				if err != nil {
					t.Fatalf("Issue: %v", err)
				}
				if c.Serial == "" {
					t.Errorf("Issue returned %+v", c)
				}
				checkTokenOnKeyOnly(t, s.requests())
				return
			}
			if err == nil {
				t.Fatal("Issue succeeded")
			}
			if tt.wantPrefix != "" {
				if want := strings.ReplaceAll(tt.wantPrefix, "{url}", s.URL); !strings.HasPrefix(err.Error(), want) {
					t.Errorf("error %q does not start with %q", err, want)
				}
			} else if diff := cmp.Diff(strings.ReplaceAll(tt.want, "{url}", s.URL), err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if got := errors.Is(err, vault.ErrDenied); got != tt.denied {
				t.Errorf("errors.Is(err, vault.ErrDenied) = %v, want %v", got, tt.denied)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			noSecretsIn(t, err.Error(), good.Key)
			if tt.instance == ".." && len(s.requests()) > 0 {
				t.Errorf("requests sent for a refused instance name: %v", s.requests())
			}
		})
	}
}

// checkTokenOnKeyOnly checks that the token went with the key download
// and with nothing else, and so did any client certificate.
func checkTokenOnKeyOnly(t *testing.T, seen []request) {
	t.Helper()
	for _, r := range seen {
		key := strings.HasSuffix(r.Path, "/tls.key")
		if got := r.Authorization != ""; got != key {
			t.Errorf("request for %s carried a token: %v, want %v", r.Path, got, key)
		}
		if r.ClientCert && !key {
			t.Errorf("request for %s presented the client certificate", r.Path)
		}
	}
}

func failWith(code int, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(code)
		w.Write(body)
	}
}

func TestSecretsStayOutOfErrors(t *testing.T) {
	ca := inlinetest.NewCA("orders")
	req := vaulttest.DefaultRequest()
	f := ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil).Files()
	mismatched := f
	mismatched.Key = ca.Sign(inlinetest.Template(req.Instance, req.Hosts...), nil).KeyPEM()
	sig := "sig=canary-signature-0b8d"
	for _, tt := range []struct {
		name   string
		routes map[string]http.HandlerFunc
	}{
		{"the served key does not match", instanceRoutes(req.Instance, mismatched)},
		{"the key server fails with the key in its body", map[string]http.HandlerFunc{
			"/pki/orders-db/tls.crt": serve(f.Cert), "/pki/orders-db/tls.key": failWith(http.StatusBadGateway, f.Key)}},
		{"the key server refuses with the token in its body", map[string]http.HandlerFunc{
			"/pki/orders-db/tls.crt": serve(f.Cert), "/pki/orders-db/tls.key": failWith(http.StatusForbidden, []byte("bad token "+canary))}},
		{"nothing is served", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.routes, nil)
			// A presigned URL carries its signature in the query.
			iss := newIssuer(t, href.WithURLs(s.URL+"/pki/{instance}/tls.crt?"+sig, s.URL+"/pki/{instance}/tls.key?"+sig, s.URL+"/pki/{instance}/ca.crt?"+sig),
				href.WithRootCAs(s.rootPEM()), href.WithBearerToken(vault.Secret(canary)))
			_, err := iss.Issue(context.Background(), req)
			if err == nil {
				t.Fatal("Issue succeeded")
			}
			noSecretsIn(t, err.Error(), f.Key, mismatched.Key)
			if strings.Contains(err.Error(), sig) {
				t.Errorf("the URL's query leaked into %q", err)
			}
		})
	}
}

// noSecretsIn fails if out holds the canary token or any line of a key.
func noSecretsIn(t *testing.T, out string, keys ...[]byte) {
	t.Helper()
	if strings.Contains(out, canary) {
		t.Errorf("the bearer token leaked into %q", out)
	}
	for _, k := range keys {
		vaulttest.NoSecretIn(t, vault.Secret(k), []string{out})
		for _, line := range strings.Split(string(k), "\n") {
			if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(out, line) {
				t.Errorf("a private key leaked into %q", out)
			}
		}
	}
}

func TestNew(t *testing.T) {
	const base = "https://certs.example/pki/{instance}/"
	urls := href.WithURLs(base+"tls.crt", base+"tls.key", base+"ca.crt")
	tests := []struct {
		name string
		opts []href.Option
		want string
	}{
		{name: "no URLs", want: "configure href issuer: no URLs: set the certificate, key and CA URLs with WithURLs"},
		{
			name: "http:// refused for the key",
			opts: []href.Option{href.WithURLs(base+"tls.crt", "http://certs.example/pki/{instance}/tls.key", base+"ca.crt")},
			want: "configure href issuer: the key URL http://certs.example/pki/{instance}/tls.key is not https://: certificates and keys must not cross the network in clear",
		},
		{
			name: "http:// refused for the certificate",
			opts: []href.Option{href.WithURLs("http://certs.example/{instance}.crt", base+"tls.key", base+"ca.crt")},
			want: "configure href issuer: the certificate URL http://certs.example/{instance}.crt is not https://: certificates and keys must not cross the network in clear",
		},
		{
			name: "http:// refused for the CA bundle",
			opts: []href.Option{urls, href.WithCABundleURL("http://certs.example/ca.crt")},
			want: "configure href issuer: the CA bundle URL http://certs.example/ca.crt is not https://: certificates and keys must not cross the network in clear",
		},
		{
			name: "a missing CA URL",
			opts: []href.Option{href.WithURLs(base+"tls.crt", base+"tls.key", "")},
			want: "configure href issuer: the CA URL is empty",
		},
		{
			name: "a password in a URL, not shown",
			opts: []href.Option{href.WithURLs("https://user:hunter2@certs.example/{instance}.crt", base+"tls.key", base+"ca.crt")},
			want: "configure href issuer: the certificate URL https://certs.example/{instance}.crt carries a user or password: pass a token with WithBearerToken instead",
		},
		{
			name: "a URL that does not parse",
			opts: []href.Option{href.WithURLs("https://certs.example/%zz", base+"tls.key", base+"ca.crt")},
			want: `configure href issuer: the certificate URL does not parse: invalid URL escape "%zz"`,
		},
		{
			name: "a CA bundle URL per instance",
			opts: []href.Option{urls, href.WithCABundleURL(base + "ca.crt")},
			want: "configure href issuer: the CA bundle URL names an instance ({instance}): it is the fleet's, one for all instances",
		},
		{
			name: "root CAs that hold no certificate",
			opts: []href.Option{urls, href.WithRootCAs([]byte("not PEM"))},
			want: "configure href issuer: the root CAs (WithRootCAs) hold no PEM certificate",
		},
		{
			name: "a token with a trailing newline, not shown",
			opts: []href.Option{urls, href.WithBearerToken(vault.Secret(canary + "\n"))},
			want: "configure href issuer: the bearer token holds spaces, line breaks or other characters a header cannot carry; check how it was read (a trailing newline?)",
		},
		{
			name: "an empty token",
			opts: []href.Option{urls, href.WithBearerToken(nil)},
			want: "configure href issuer: the bearer token is empty",
		},
		{
			name: "an empty CA bundle",
			opts: []href.Option{urls, href.WithCABundle([]byte{})},
			want: "configure href issuer: the CA bundle (WithCABundle) holds no PEM certificate; put the CA chain that issued the certificate there, PEM, root last",
		},
		{
			name: "zero timeout",
			opts: []href.Option{urls, href.WithTimeout(0)},
			want: "configure href issuer: timeout 0s is not positive",
		},
		{
			name: "zero size limit",
			opts: []href.Option{urls, href.WithMaxSize(0)},
			want: "configure href issuer: maximum size 0 is not positive",
		},
		{
			name: "negative window",
			opts: []href.Option{urls, href.WithMinRemaining(-time.Minute)},
			want: "configure href issuer: minimum remaining validity -1m0s is negative",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := href.New(tt.opts...)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if diff := cmp.Diff(tt.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			noSecretsIn(t, err.Error())
		})
	}
}

func TestCAChain(t *testing.T) {
	ca := inlinetest.NewCA("orders")
	tests := []struct {
		name   string
		routes map[string]http.HandlerFunc
		opts   func(s *server) []href.Option
		want   string // {url} stands for the server's URL
	}{
		{
			name: "no fleet CA when the CA URL is per instance",
			opts: func(s *server) []href.Option { return []href.Option{s.urls()} },
			want: "read CA chain: denied by the key provider: the CA URL is per instance and no fleet CA bundle is configured; configure one with WithCABundle or WithCABundleURL",
		},
		{
			name:   "a downloaded bundle without its root",
			routes: map[string]http.HandlerFunc{"/ca.crt": serve(inlinetest.EncodeCerts(ca.Intermediate))},
			opts:   func(s *server) []href.Option { return []href.Option{s.urls(), href.WithCABundleURL(s.URL + "/ca.crt")} },
			want:   `read CA chain: the CA bundle from {url}/ca.crt ends with "CN=orders Intermediate CA", which is not a self-signed root CA; append the root CA certificate`,
		},
		{
			name: "a bundle that is not there",
			opts: func(s *server) []href.Option { return []href.Option{s.urls(), href.WithCABundleURL(s.URL + "/ca.crt")} },
			want: "read CA chain: the CA bundle from {url}/ca.crt was not found (404 Not Found); put the file on the server, or fix the URL template (WithURLs)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newServer(t, tt.routes, nil)
			iss := newIssuer(t, append(tt.opts(s), href.WithRootCAs(s.rootPEM()))...)
			_, err := iss.CAChain(context.Background())
			if err == nil {
				t.Fatal("CAChain succeeded")
			}
			if diff := cmp.Diff(strings.ReplaceAll(tt.want, "{url}", s.URL), err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if !errors.Is(err, vault.ErrDenied) {
				t.Errorf("error %v does not wrap vault.ErrDenied", err)
			}
		})
	}
}

func TestRevokeIsUnsupported(t *testing.T) {
	iss := newIssuer(t, href.WithURLs("https://c.example/{instance}.crt", "https://c.example/{instance}.key", "https://c.example/ca.crt"))
	if err := iss.Revoke(context.Background(), "01:02"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Revoke = %v, want errors.ErrUnsupported", err)
	}
}

// clientCert returns a client certificate signed by ca.
func clientCert(ca *inlinetest.CA) tls.Certificate {
	tmpl := inlinetest.Template("reconciler")
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	l := ca.Sign(tmpl, nil)
	return tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key, Leaf: l.Cert}
}
