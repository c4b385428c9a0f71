package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/installers/cassandra"
	"github.com/reconciler-dev/reconciler/agent/installers/manticore"
	"github.com/reconciler-dev/reconciler/agent/installers/mongodb"
	"github.com/reconciler-dev/reconciler/agent/installers/mysql"
	"github.com/reconciler-dev/reconciler/agent/installers/postgresql"
	"github.com/reconciler-dev/reconciler/agent/verify"
	"github.com/reconciler-dev/reconciler/specs"
)

// NewInstaller returns the installer for the datastore the configuration
// describes.
func NewInstaller(d DatastoreConfig, log *slog.Logger) (installers.Installer, error) {
	ds := d.Installer()
	switch d.Type {
	case specs.PostgreSQL:
		opts := []postgresql.Option{postgresql.WithLogger(log)}
		if d.HBAFile != "" {
			opts = append(opts, postgresql.WithHBAFile(d.HBAFile))
		}
		return postgresql.New(ds, opts...), nil
	case specs.MySQL, specs.MariaDB:
		return mysql.New(ds, mysql.WithLogger(log)), nil
	case specs.MongoDB:
		opts := []mongodb.Option{mongodb.WithLogger(log)}
		if d.ConfigFile != "" {
			opts = append(opts, mongodb.WithConfigFile(d.ConfigFile))
		}
		if d.TLSDir != "" {
			opts = append(opts, mongodb.WithTLSDir(d.TLSDir))
		}
		return mongodb.New(ds, opts...), nil
	case specs.Cassandra:
		opts := []cassandra.Option{cassandra.WithLogger(log)}
		if d.ConfigFile != "" {
			opts = append(opts, cassandra.WithConfigFile(d.ConfigFile))
		}
		if d.TLSDir != "" {
			opts = append(opts, cassandra.WithTLSDir(d.TLSDir))
		}
		return cassandra.New(ds, opts...), nil
	case specs.Manticore:
		opts := []manticore.Option{manticore.WithLogger(log)}
		if d.ConfigFile != "" {
			opts = append(opts, manticore.WithConfigFile(d.ConfigFile))
		}
		if d.TLSDir != "" {
			opts = append(opts, manticore.WithTLSDir(d.TLSDir))
		}
		return manticore.New(ds, opts...), nil
	}
	return nil, fmt.Errorf("new installer: datastore type %q is not one of %v", d.Type, datastoreTypes)
}

// HandshakeVerifier proves TLS from the client side with a handshake in
// the datastore's own protocol (verify.Check): the chain must lead to the
// instance's CA and cover Host, and the leaf must be the issued one.
type HandshakeVerifier struct {
	Kind string // the datastore type
	Host string // the name or address clients use; the certificate must cover it
	Port int
}

var _ Verifier = HandshakeVerifier{}

// NewVerifier returns the verifier for the configured datastore.
func NewVerifier(d DatastoreConfig) HandshakeVerifier {
	return HandshakeVerifier{Kind: d.Type, Host: d.Host, Port: d.Port}
}

// Verify implements Verifier.
func (v HandshakeVerifier) Verify(ctx context.Context, chainPEM []byte, fingerprint string) error {
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(chainPEM) {
		return errors.New("verify TLS: the CA chain holds no certificate")
	}
	addr := net.JoinHostPort(v.Host, strconv.Itoa(v.Port))
	return verify.Check(ctx, v.Kind, addr, roots, v.Host, fingerprint)
}
