package verify_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/verify"
	"github.com/reconciler-dev/reconciler/vault"
)

// writeFor writes a file the server's user owns.
func writeFor(t *testing.T, s *datastoretest.Server, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(s.ConfigDir, name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	u, err := user.Lookup(s.User)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	return path
}

func serverPEM(c *vault.Certificate) []byte {
	return append(append([]byte{}, c.CertPEM...), c.ChainPEM...)
}

// sslPostgreSQL starts a private PostgreSQL serving cert.
func sslPostgreSQL(t *testing.T, cert *vault.Certificate) *datastoretest.Server {
	s := datastoretest.PostgreSQL(t, datastoretest.Options{})
	crt := writeFor(t, s, "server.crt", serverPEM(cert), 0o644)
	key := writeFor(t, s, "server.key", cert.Key.Bytes(), 0o600)
	writeFor(t, s, "ssl.conf", []byte("ssl = on\nssl_cert_file = '"+crt+"'\nssl_key_file = '"+key+"'\n"), 0o644)
	s.Restart(t)
	return s
}

// sslMariaDB starts a private MariaDB serving cert.
func sslMariaDB(t *testing.T, ca *datastoretest.CA, cert *vault.Certificate) *datastoretest.Server {
	s := datastoretest.MariaDB(t, datastoretest.Options{})
	crt := writeFor(t, s, "server-cert.pem", serverPEM(cert), 0o644)
	key := writeFor(t, s, "server-key.pem", cert.Key.Bytes(), 0o600)
	caFile := writeFor(t, s, "ca.pem", ca.ChainPEM, 0o644)
	writeFor(t, s, "ssl.cnf", []byte("[mysqld]\nssl_cert = "+crt+"\nssl_key = "+key+"\nssl_ca = "+caFile+"\n"), 0o644)
	s.Restart(t)
	return s
}

// tlsServer is an httptest TLS server serving cert.
func tlsServer(t *testing.T, cert *vault.Certificate) *httptest.Server {
	pair, err := tls.X509KeyPair(serverPEM(cert), cert.Key.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("{}"))
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// silentListener accepts connections and never says anything.
func silentListener(t *testing.T, greeting string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if greeting != "" {
				c.Write([]byte(greeting))
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	return l.Addr().String()
}

type checkCase struct {
	name       string
	kind       string
	addr       string
	roots      *x509.CertPool
	serverName string
	want       string // fingerprint
	wantIs     error  // errors.Is target, nil for success
	wantText   string // substring of the error
}

func runChecks(t *testing.T, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			err := verify.Check(ctx, tc.kind, tc.addr, tc.roots, tc.serverName, tc.want)
			switch {
			case tc.wantIs == nil && tc.wantText == "":
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
			case err == nil:
				t.Fatalf("Check passed, want an error (%v %q)", tc.wantIs, tc.wantText)
			default:
				if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
					t.Errorf("Check error %v, want one that is %v", err, tc.wantIs)
				}
				if !strings.Contains(err.Error(), tc.wantText) {
					t.Errorf("Check error %q, want it to contain %q", err, tc.wantText)
				}
			}
		})
	}
}

func TestCheckPostgreSQL(t *testing.T) {
	ca, other := datastoretest.NewCA(t), datastoretest.NewCA(t)
	cert, another := ca.Issue(t, "orders-db"), ca.Issue(t, "orders-db")
	s := sslPostgreSQL(t, cert)
	plain := datastoretest.PostgreSQL(t, datastoretest.Options{})
	runChecks(t, []checkCase{
		{name: "issued certificate served", kind: verify.PostgreSQL, addr: s.Addr, roots: ca.Pool(t), serverName: "127.0.0.1", want: cert.Fingerprint},
		{name: "fingerprint with colons and capitals", kind: verify.PostgreSQL, addr: s.Addr, roots: ca.Pool(t), want: strings.ToUpper(cert.Fingerprint)},
		{name: "another certificate of the same CA", kind: verify.PostgreSQL, addr: s.Addr, roots: ca.Pool(t), want: another.Fingerprint,
			wantText: "served certificate serial " + cert.Serial + " has fingerprint " + cert.Fingerprint + ", want " + another.Fingerprint},
		{name: "wrong CA", kind: verify.PostgreSQL, addr: s.Addr, roots: other.Pool(t), want: cert.Fingerprint,
			wantText: "served certificate serial " + cert.Serial},
		{name: "name not covered", kind: verify.PostgreSQL, addr: s.Addr, roots: ca.Pool(t), serverName: "db.example.com", want: cert.Fingerprint,
			wantText: "chain does not verify"},
		{name: "SSL off", kind: verify.PostgreSQL, addr: plain.Addr, roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: verify.ErrSSLOff, wantText: "server answered N: SSL is off"},
	})

	t.Run("wrong CA is a MismatchError with the x509 reason", func(t *testing.T) {
		err := verify.Check(t.Context(), verify.PostgreSQL, s.Addr, other.Pool(t), "", cert.Fingerprint)
		var m *verify.MismatchError
		if !errors.As(err, &m) {
			t.Fatalf("error %v is not a *MismatchError", err)
		}
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("error %v does not carry x509.UnknownAuthorityError", err)
		}
		if m.Served.Serial != cert.Serial || m.Served.Fingerprint != cert.Fingerprint {
			t.Errorf("served %+v, want serial %s fingerprint %s", m.Served, cert.Serial, cert.Fingerprint)
		}
	})
}

func TestCheckMariaDB(t *testing.T) {
	ca, other := datastoretest.NewCA(t), datastoretest.NewCA(t)
	cert, another := ca.Issue(t, "orders-db"), ca.Issue(t, "orders-db")
	s := sslMariaDB(t, ca, cert)
	plain := datastoretest.MariaDB(t, datastoretest.Options{})
	pg := datastoretest.PostgreSQL(t, datastoretest.Options{})
	runChecks(t, []checkCase{
		{name: "issued certificate served", kind: verify.MariaDB, addr: s.Addr, roots: ca.Pool(t), serverName: "localhost", want: cert.Fingerprint},
		{name: "mysql kind speaks the same handshake", kind: verify.MySQL, addr: s.Addr, roots: ca.Pool(t), want: cert.Fingerprint},
		{name: "another certificate of the same CA", kind: verify.MariaDB, addr: s.Addr, roots: ca.Pool(t), want: another.Fingerprint,
			wantText: "served certificate serial " + cert.Serial + " has fingerprint " + cert.Fingerprint},
		{name: "wrong CA", kind: verify.MariaDB, addr: s.Addr, roots: other.Pool(t), want: cert.Fingerprint,
			wantText: "certificate signed by unknown authority"},
		{name: "SSL off", kind: verify.MariaDB, addr: plain.Addr, roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: verify.ErrSSLOff, wantText: "does not offer CLIENT_SSL"},
		{name: "PostgreSQL handshake on a MariaDB port", kind: verify.PostgreSQL, addr: s.Addr, roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: verify.ErrNotDatastore},
		{name: "plain TLS on a MariaDB port", kind: verify.MongoDB, addr: s.Addr, roots: ca.Pool(t), want: cert.Fingerprint,
			wantText: "tls handshake"},
		{name: "MariaDB handshake on a PostgreSQL port", kind: verify.MariaDB, addr: pg.Addr, roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: context.DeadlineExceeded},
	})
}

func TestCheckPlainTLSAndHTTPS(t *testing.T) {
	ca, other := datastoretest.NewCA(t), datastoretest.NewCA(t)
	cert, another := ca.Issue(t, "search"), ca.Issue(t, "search")
	srv := tlsServer(t, cert)
	addr := srv.Listener.Addr().String()
	plainHTTP := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plainHTTP.Close)
	httpAddr := plainHTTP.Listener.Addr().String()
	runChecks(t, []checkCase{
		{name: "mongodb: issued certificate", kind: verify.MongoDB, addr: addr, roots: ca.Pool(t), want: cert.Fingerprint},
		{name: "cassandra: issued certificate", kind: verify.Cassandra, addr: addr, roots: ca.Pool(t), serverName: "localhost", want: cert.Fingerprint},
		{name: "manticore: issued certificate and an HTTP answer", kind: verify.Manticore, addr: addr, roots: ca.Pool(t), want: cert.Fingerprint},
		{name: "manticore: another certificate", kind: verify.Manticore, addr: addr, roots: ca.Pool(t), want: another.Fingerprint,
			wantText: "has fingerprint " + cert.Fingerprint + ", want " + another.Fingerprint},
		{name: "mongodb: wrong CA", kind: verify.MongoDB, addr: addr, roots: other.Pool(t), want: cert.Fingerprint,
			wantText: "chain does not verify"},
		{name: "manticore: plaintext HTTP port", kind: verify.Manticore, addr: httpAddr, roots: ca.Pool(t), want: cert.Fingerprint,
			wantText: "tls handshake"},
		{name: "postgresql: a peer answering in HTTP", kind: verify.PostgreSQL, addr: silentListener(t, "HTTP/1.1 400 Bad Request\r\n\r\n"), roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: verify.ErrNotDatastore, wantText: "byte 0x48"},
		{name: "postgresql: an HTTP server waits for a request line", kind: verify.PostgreSQL, addr: httpAddr, roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: context.DeadlineExceeded},
		{name: "mysql: SSH-like banner", kind: verify.MySQL, addr: silentListener(t, "SSH-2.0-OpenSSH_9.2\r\n"), roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: verify.ErrNotDatastore},
		{name: "mysql: silent peer", kind: verify.MySQL, addr: silentListener(t, ""), roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: context.DeadlineExceeded},
		{name: "unknown kind", kind: "oracle", addr: addr, roots: ca.Pool(t), want: cert.Fingerprint,
			wantIs: verify.ErrUnknownKind},
	})
}

func TestHandshakeReturnsConnectionState(t *testing.T) {
	ca := datastoretest.NewCA(t)
	cert := ca.Issue(t, "search")
	srv := tlsServer(t, cert)
	state, err := verify.Handshake(t.Context(), verify.Manticore, srv.Listener.Addr().String(), &tls.Config{RootCAs: ca.Pool(t), MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	if got := vault.Fingerprint(state.PeerCertificates[0].Raw); got != cert.Fingerprint {
		t.Errorf("served fingerprint %s, want %s", got, cert.Fingerprint)
	}
	if state.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want TLS 1.3", state.Version)
	}
}
