// Package none is Trove's "none" key-provider driver: it issues nothing,
// and an instance under it keeps SSL off.
//
// Choose it for instances that must stay on plaintext for now (a legacy
// client, a datastore version without TLS) while the rest of the fleet
// moves to TLS: spec.tls.provider: none together with spec.ssl: disabled.
//
// What newcomers get wrong: "none" does not switch SSL off by itself. An
// instance that still says spec.ssl: enabled is a contradiction, and
// Issue answers it with an error wrapping vault.ErrNoSSL that says how to
// resolve it, rather than silently leaving the instance on plaintext.
// The fleet parser rejects that combination too; this error is the last
// line of defence for callers that skip it.
package none
