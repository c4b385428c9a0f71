package specs

import "time"

// Defaults fill the fields an instance document may leave out. The daemon
// reads them from its configuration; DefaultDefaults are the built-in ones.
type Defaults struct {
	TTL                    time.Duration
	MinVersion             string
	RequireSecureTransport bool
	Provider               string
}

// DefaultDefaults returns the built-in defaults: 30-day certificates, TLS 1.2
// or newer, plaintext client connections refused once SSL is on, and the
// embedded local key provider.
func DefaultDefaults() Defaults {
	return Defaults{
		TTL:                    720 * time.Hour,
		MinVersion:             "1.2",
		RequireSecureTransport: true,
		Provider:               ProviderLocal,
	}
}

// apply is the one place defaults enter an instance. raw tells which
// optional fields the document set itself.
func (d Defaults) apply(in *Instance, tls map[string]any) {
	set := func(key string) bool { return tls[key] != nil }
	if in.Spec.RPCEncryption == "" {
		in.Spec.RPCEncryption = Disabled
	}
	if !set("ttl") {
		in.Spec.TLS.TTL = d.TTL
	}
	if !set("minVersion") {
		in.Spec.TLS.MinVersion = d.MinVersion
	}
	if !set("requireSecureTransport") {
		in.Spec.TLS.RequireSecureTransport = d.RequireSecureTransport
	}
	if !set("keyType") {
		in.Spec.TLS.KeyType = KeyTypeEC
	}
	if !set("provider") {
		in.Spec.TLS.Provider = d.Provider
	}
}
