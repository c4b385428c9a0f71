package plan

import (
	"slices"
	"strconv"
	"strings"

	"github.com/reconciler-dev/reconciler/specs"
)

// Action is one step a real run takes on an instance.
type Action string

// Actions, in the order they run when several apply.
const (
	// CreateRPCKey makes the instance's RPC key and delivers it to the
	// agent, so that the certificate's private key later travels encrypted.
	CreateRPCKey Action = "create-rpc-key"
	// IssueCertificate gets a certificate for the instance's hosts from
	// its key provider.
	IssueCertificate Action = "issue-certificate"
	// InstallSSL writes the certificate, key and CA files and the
	// datastore's TLS configuration on the host.
	InstallSSL Action = "install-ssl"
	// RemoveSSL removes the datastore's TLS configuration and files.
	RemoveSSL Action = "remove-ssl"
	// ReloadDatastore makes the datastore pick its TLS configuration up
	// without a restart (PostgreSQL reload, MySQL ALTER INSTANCE RELOAD
	// TLS, MariaDB FLUSH SSL, MongoDB rotateCertificates).
	ReloadDatastore Action = "reload-datastore"
	// RestartRequired marks a change the datastore takes only on restart:
	// the instance reports RestartRequired unless its agent may restart it.
	RestartRequired Action = "restart-required"
	// VerifyTLS connects in the datastore's own protocol and checks that it
	// serves the issued certificate.
	VerifyTLS Action = "verify-tls"
	// RevokeCertificate revokes the certificate no longer served.
	RevokeCertificate Action = "revoke-certificate"
	// RetireRPCKey stops accepting the instance's RPC key.
	RetireRPCKey Action = "retire-rpc-key"
	// Release stops managing an instance removed from the fleet, changing
	// nothing on its host.
	Release Action = "release"
)

// actions lists what a run does to take an instance from old to desired
// (either may be nil).
func actions(old, desired *specs.Instance, opts Options) []Action {
	if desired == nil {
		if !opts.Prune {
			return []Action{Release}
		}
		var out []Action
		if old.SSLEnabled() {
			out = append(out, RemoveSSL, apply(old.Spec.Datastore, true), RevokeCertificate)
		}
		if old.RPCEncrypted() {
			out = append(out, RetireRPCKey)
		}
		return append(out, Release)
	}
	var out []Action
	wasRPC := old != nil && old.RPCEncrypted()
	if desired.RPCEncrypted() && !wasRPC {
		out = append(out, CreateRPCKey)
	}
	wasSSL := old != nil && old.SSLEnabled()
	ds := desired.Spec.Datastore
	switch {
	case desired.SSLEnabled() && !wasSSL:
		out = append(out, IssueCertificate, InstallSSL, apply(ds, true), VerifyTLS)
	case !desired.SSLEnabled() && wasSSL:
		out = append(out, RemoveSSL, apply(ds, true), RevokeCertificate)
	case desired.SSLEnabled() && certificateChanges(old, desired):
		out = append(out, IssueCertificate, InstallSSL, apply(ds, false), VerifyTLS, RevokeCertificate)
	case desired.SSLEnabled() && configChanges(old, desired):
		out = append(out, InstallSSL, apply(ds, old.Spec.Datastore.Type != ds.Type), VerifyTLS)
	}
	if wasRPC && !desired.RPCEncrypted() {
		out = append(out, RetireRPCKey)
	}
	return out
}

// certificateChanges reports whether the served certificate must be
// reissued: what it certifies or who issues it changed.
func certificateChanges(old, desired *specs.Instance) bool {
	o, d := old.Spec, desired.Spec
	return !slices.Equal(o.Hosts, d.Hosts) || o.TLS.TTL != d.TLS.TTL || o.TLS.Provider != d.TLS.Provider ||
		o.TLS.KeyType != d.TLS.KeyType
}

// configChanges reports whether the datastore's TLS configuration changes
// with the same certificate.
func configChanges(old, desired *specs.Instance) bool {
	o, d := old.Spec, desired.Spec
	return o.TLS.MinVersion != d.TLS.MinVersion || o.TLS.RequireSecureTransport != d.TLS.RequireSecureTransport ||
		o.Datastore != d.Datastore
}

// apply returns how the datastore takes new TLS settings: toggling is
// turning TLS on or off, as opposed to new files or options while it is on.
// The guest agent has the last word: when a reload fails to take it
// reports RestartRequired, and the next plan agrees.
func apply(ds specs.Datastore, toggling bool) Action {
	v := ds.Version
	switch ds.Type {
	case specs.PostgreSQL: // SSL settings are reloadable since 10
		return reloadIf(atLeast(v, 10, 0))
	case specs.MySQL: // ALTER INSTANCE RELOAD TLS, 8.0.16 and later
		return reloadIf(atLeast(v, 8, 0))
	case specs.MariaDB: // ssl_* paths are read-only at run time: on or off takes a restart; FLUSH SSL (10.4+) reloads new files
		return reloadIf(!toggling && atLeast(v, 10, 4))
	case specs.MongoDB: // net.tls.mode is read at start; rotateCertificates since 5.0
		return reloadIf(!toggling && atLeast(v, 5, 0))
	case specs.Cassandra: // encryption options are read at start; certificates hot-reload since 4.0
		return reloadIf(!toggling && atLeast(v, 4, 0))
	}
	return RestartRequired // Manticore reads its listeners at start
}

func reloadIf(ok bool) Action {
	if ok {
		return ReloadDatastore
	}
	return RestartRequired
}

// atLeast compares a "major.minor..." version; an unknown version is taken
// to be current.
func atLeast(version string, major, minor int) bool {
	if version == "" {
		return true
	}
	parts := strings.SplitN(version, ".", 3)
	ma, err := strconv.Atoi(parts[0])
	if err != nil {
		return true
	}
	mi := 0
	if len(parts) > 1 {
		mi, _ = strconv.Atoi(parts[1])
	}
	return ma > major || (ma == major && mi >= minor)
}
