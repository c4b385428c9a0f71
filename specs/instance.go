package specs

import "time"

// APIVersion and Kind are the only values the instance document accepts.
const (
	APIVersion = "reconciler/v1"
	Kind       = "Instance"
)

// Datastore types.
const (
	MySQL      = "mysql"
	MariaDB    = "mariadb"
	PostgreSQL = "postgresql"
	MongoDB    = "mongodb"
	Cassandra  = "cassandra"
	Manticore  = "manticore"
)

// Toggle values of spec.ssl and spec.rpcEncryption.
const (
	Enabled  = "enabled"
	Disabled = "disabled"
)

// Certificate key types, as named by spec.tls.keyType.
const (
	KeyTypeEC  = "ec"
	KeyTypeRSA = "rsa"
)

// Key providers, as named by spec.tls.provider.
const (
	ProviderVault  = "vault"
	ProviderLocal  = "local"
	ProviderInline = "inline"
	ProviderHref   = "href"
	ProviderNone   = "none"
)

// Instance is the desired state of one database instance, with defaults
// applied.
type Instance struct {
	Metadata Metadata
	Spec     Spec

	// File is the slash-separated path of the file the document came from,
	// relative to the fleet root; Line is the line its document starts on.
	File string
	Line int
	// Raw is the document exactly as written (maps, slices, strings,
	// bools and numbers), which is what policies receive as input.
	Raw map[string]any
}

// Metadata names and labels an instance.
type Metadata struct {
	Name        string
	Labels      map[string]string
	Annotations map[string]string
}

// Spec is what the reconciler makes true on the instance's host.
type Spec struct {
	Datastore     Datastore
	Hosts         []string
	SSL           string // Enabled or Disabled
	RPCEncryption string // Enabled or Disabled
	TLS           TLS
}

// Datastore says which server runs on the host.
type Datastore struct {
	Type    string
	Version string // "" when the document leaves it out
}

// TLS tunes the certificate and the datastore's TLS configuration.
type TLS struct {
	TTL                    time.Duration
	MinVersion             string // "1.2" or "1.3"
	RequireSecureTransport bool
	KeyType                string // KeyTypeEC or KeyTypeRSA
	Provider               string
}

// SSLEnabled reports whether the instance asks for TLS.
func (in *Instance) SSLEnabled() bool { return in.Spec.SSL == Enabled }

// RPCEncrypted reports whether the instance asks for encrypted agent messages.
func (in *Instance) RPCEncrypted() bool { return in.Spec.RPCEncryption == Enabled }
