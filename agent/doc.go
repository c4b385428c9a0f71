// Package agent is the guest agent that runs on each database host: it
// pulls its instance's desired state from the reconciler, installs the
// TLS files and the datastore's own TLS configuration, reloads or asks
// for a restart, verifies with a real handshake that the datastore serves
// the issued certificate, and reports back.
//
// Its parts live in subpackages: agent/rpc seals every message with the
// instance's key; agent/installers writes each datastore's configuration;
// agent/verify proves TLS from the client side in each datastore's own
// protocol.
package agent
