// Package installers turns an instance's TLS material into each
// datastore's own configuration on the host. The Installer interface is
// the boundary; one subpackage per datastore implements it
// (installers/postgresql, installers/mysql for MySQL and MariaDB,
// installers/mongodb, installers/cassandra, installers/manticore).
//
// Files are written with Files: atomically (temporary file, fsync,
// rename), keys 0600 and owned by the datastore's user, the previous
// version kept for rollback. An installer that fails to apply its change
// rolls every file back before it returns, so a host is never left half
// configured.
package installers

import (
	"context"

	"github.com/reconciler-dev/reconciler/vault"
)

// Bundle is what the reconciler sends for an instance with SSL enabled.
type Bundle struct {
	CertPEM  []byte       // leaf certificate
	ChainPEM []byte       // issuing chain; the CA file clients and the server trust
	Key      vault.Secret // private key, PEM
	// Serial and Fingerprint identify the certificate in status reports.
	Serial, Fingerprint string
	// MinVersion is "1.2" or "1.3".
	MinVersion string
	// RequireSecureTransport refuses plaintext client connections.
	RequireSecureTransport bool
}

// Datastore is the agent's local knowledge of the server it manages, from
// its configuration file.
type Datastore struct {
	Type    string // specs.MySQL, specs.PostgreSQL, ...
	Version string
	// ConfigDir is where the installer writes its TLS files and its
	// configuration fragment (an include file, a conf.d drop-in).
	ConfigDir string
	// DataDir is the server's data directory, for datastores that keep
	// their configuration there (PostgreSQL).
	DataDir string
	// Host and Port are where clients connect, for verification.
	Host string
	Port int
	// User owns the files (the server must read the key); "" keeps the
	// agent's own user.
	User string
	// AdminDSN connects as an administrator for SQL reloads (MySQL's
	// ALTER INSTANCE RELOAD TLS, MariaDB's FLUSH SSL, PostgreSQL's
	// pg_reload_conf()); "" means use ReloadCommand.
	AdminDSN string
	// ReloadCommand and RestartCommand run the datastore's own tools
	// (argv, no shell).
	ReloadCommand  []string
	RestartCommand []string
	// AllowRestart lets the agent restart a datastore that cannot reload
	// TLS; otherwise it reports RestartRequired.
	AllowRestart bool
}

// Outcome says how a change took effect.
type Outcome string

// Outcomes.
const (
	Reloaded        Outcome = "Reloaded"        // live, no restart
	Restarted       Outcome = "Restarted"       // the agent restarted the server
	RestartRequired Outcome = "RestartRequired" // written; takes effect on the next restart (Trove's RESTART_REQUIRED_SSL)
)

// Result is what an Install or Remove did.
type Result struct {
	Outcome Outcome
	// Files are the paths written or removed, for status and audits.
	Files []string
	// Message is for people: what was done, or what the operator must do.
	Message string
}

// Installer configures one datastore's TLS. Implementations are used by
// one goroutine at a time.
//
// Install writes the bundle's files and the datastore's TLS configuration
// and applies them (reload, restart if allowed, or RestartRequired). If
// applying fails it restores every previous file and returns an error
// carrying the datastore's own message. Installing the same bundle twice
// is a no-op that reports the same outcome. Remove takes the TLS
// configuration out cleanly (files and configuration fragment) and
// applies that, with the same rollback on failure.
type Installer interface {
	Install(ctx context.Context, b Bundle) (*Result, error)
	Remove(ctx context.Context) (*Result, error)
}
