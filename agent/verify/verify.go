package verify

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"

	"github.com/reconciler-dev/reconciler/vault"
)

// Datastore kinds, as specs names them.
const (
	PostgreSQL = "postgresql"
	MySQL      = "mysql"
	MariaDB    = "mariadb"
	MongoDB    = "mongodb"
	Cassandra  = "cassandra"
	Manticore  = "manticore"
)

// ErrSSLOff means the server speaks the datastore's protocol but refused
// to start TLS: SSL is not enabled on it.
var ErrSSLOff = errors.New("SSL is off")

// ErrNotDatastore means the peer did not answer in the datastore's
// protocol: the port is wrong, or something else listens on it.
var ErrNotDatastore = errors.New("not the expected datastore protocol")

// ErrUnknownKind is returned for a datastore kind this package does not
// speak.
var ErrUnknownKind = errors.New("unknown datastore kind")

// MismatchError says the server serves TLS, but not with the issued
// certificate (or not one the CA vouches for). Served describes what was
// served instead.
type MismatchError struct {
	Served          Served
	WantFingerprint string
	Reason          string // "fingerprint differs", or why the chain does not verify
	Err             error  // the chain verification error, if that is the reason
}

// Served describes a certificate a server presented.
type Served struct {
	Serial      string // colon-separated hex, as vault.SerialString writes it
	Fingerprint string // SHA-256 of the DER, hex
	Subject     string
	Issuer      string
}

func describe(c *x509.Certificate) Served {
	return Served{
		Serial:      vault.SerialString(c.SerialNumber),
		Fingerprint: vault.Fingerprint(c.Raw),
		Subject:     c.Subject.String(),
		Issuer:      c.Issuer.String(),
	}
}

func (e *MismatchError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("served certificate serial %s (fingerprint %s, issuer %q): %s: %v",
			e.Served.Serial, e.Served.Fingerprint, e.Served.Issuer, e.Reason, e.Err)
	}
	return fmt.Sprintf("served certificate serial %s has fingerprint %s, want %s: %s",
		e.Served.Serial, e.Served.Fingerprint, e.WantFingerprint, e.Reason)
}

func (e *MismatchError) Unwrap() error { return e.Err }

// Handshake connects to addr and does a TLS handshake in kind's protocol
// with cfg (which decides what is verified, as for tls.Client), then
// closes the connection. cfg.ServerName defaults to addr's host. ctx
// bounds the whole exchange.
func Handshake(ctx context.Context, kind, addr string, cfg *tls.Config) (*tls.ConnectionState, error) {
	upgrade, ok := upgrades[kind]
	if !ok {
		return nil, fmt.Errorf("handshake %s: %w %q", addr, ErrUnknownKind, kind)
	}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("handshake %s: %w", addr, err)
		}
		cfg.ServerName = host
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("handshake %s %s: %w", kind, addr, err)
	}
	defer conn.Close()
	// The protocol exchange before TLS has no context of its own: closing
	// the connection when ctx ends unblocks it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	tc, err := upgrade(ctx, conn, cfg)
	if err != nil {
		switch {
		case isTyped(err):
		case ctx.Err() != nil:
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		case errors.Is(err, os.ErrDeadlineExceeded):
			// The connection's deadline is ctx's, and may fire first.
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return nil, fmt.Errorf("handshake %s %s: %w", kind, addr, err)
	}
	state := tc.ConnectionState()
	return &state, nil
}

// hungUp marks a peer that closed the connection instead of answering as
// not speaking the protocol.
func hungUp(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%w: peer closed the connection: %w", ErrNotDatastore, err)
	}
	return err
}

func isTyped(err error) bool {
	var m *MismatchError
	return errors.Is(err, ErrSSLOff) || errors.Is(err, ErrNotDatastore) || errors.As(err, &m)
}

// Check does Handshake and verifies that the served chain leads to roots
// (and covers serverName, unless it is empty) and that the served leaf's
// SHA-256 fingerprint is wantFingerprint (hex, colons and case ignored).
// A mismatch is a *MismatchError describing what was served instead; a
// server with SSL off is ErrSSLOff. The handshake fails before anything
// else is sent when the certificate is wrong.
func Check(ctx context.Context, kind, addr string, roots *x509.CertPool, serverName, wantFingerprint string) error {
	want := normalize(wantFingerprint)
	cfg := &tls.Config{
		ServerName: serverName,
		// Verification is done below, to say exactly what was served.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			leaf := cs.PeerCertificates[0]
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName}); err != nil {
				return &MismatchError{Served: describe(leaf), WantFingerprint: want, Reason: "chain does not verify", Err: err}
			}
			if got := vault.Fingerprint(leaf.Raw); got != want {
				return &MismatchError{Served: describe(leaf), WantFingerprint: want, Reason: "not the issued certificate"}
			}
			return nil
		},
	}
	_, err := Handshake(ctx, kind, addr, cfg)
	if err != nil {
		return fmt.Errorf("check %s certificate: %w", kind, err)
	}
	return nil
}

func normalize(fp string) string {
	return strings.ToLower(strings.ReplaceAll(fp, ":", ""))
}

// upgradeFunc speaks kind's protocol on conn up to a finished TLS
// handshake.
type upgradeFunc func(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error)

var upgrades = map[string]upgradeFunc{
	PostgreSQL: postgresUpgrade,
	MySQL:      mysqlUpgrade,
	MariaDB:    mysqlUpgrade,
	MongoDB:    startTLS,
	Cassandra:  startTLS,
	Manticore:  httpsUpgrade,
}

// startTLS is the handshake itself: MongoDB and Cassandra's native port
// speak TLS from the first byte, and every other protocol ends here.
func startTLS(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// sslRequestCode is PostgreSQL's SSLRequest: 1234 in the high 16 bits,
// 5679 in the low.
const sslRequestCode = 80877103

func postgresUpgrade(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	var req [8]byte
	binary.BigEndian.PutUint32(req[0:4], 8)
	binary.BigEndian.PutUint32(req[4:8], sslRequestCode)
	if _, err := conn.Write(req[:]); err != nil {
		return nil, fmt.Errorf("send SSLRequest: %w", err)
	}
	var answer [1]byte
	if _, err := io.ReadFull(conn, answer[:]); err != nil {
		return nil, fmt.Errorf("read SSLRequest answer: %w", hungUp(err))
	}
	switch answer[0] {
	case 'S':
		return startTLS(ctx, conn, cfg)
	case 'N':
		return nil, fmt.Errorf("server answered N: %w", ErrSSLOff)
	case 'E':
		// Only servers before 7.0 answer with an error message.
		return nil, fmt.Errorf("server answered SSLRequest with an error: %w", ErrSSLOff)
	default:
		return nil, fmt.Errorf("server answered SSLRequest with byte 0x%02x: %w", answer[0], ErrNotDatastore)
	}
}

// httpsUpgrade shakes hands and then asks for / over HTTP/1.1: a TLS
// listener that does not answer HTTP is not Manticore's https listener.
func httpsUpgrade(ctx context.Context, conn net.Conn, cfg *tls.Config) (*tls.Conn, error) {
	tc, err := startTLS(ctx, conn, cfg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+cfg.ServerName+"/", nil)
	if err != nil {
		return nil, fmt.Errorf("send https request: %w", err)
	}
	req.Close = true
	if err := req.Write(tc); err != nil {
		return nil, fmt.Errorf("send https request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), req)
	if err != nil {
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			err = fmt.Errorf("%w: %w", ErrNotDatastore, err)
		}
		return nil, fmt.Errorf("read https response: %w", err)
	}
	resp.Body.Close()
	return tc, nil
}
