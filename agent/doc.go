// Package agent is the guest agent that runs on each database host: it
// pulls its instance's desired state from the reconciler, installs the
// TLS files and the datastore's own TLS configuration, reloads or asks
// for a restart, verifies with a real handshake that the datastore serves
// the issued certificate, and reports back.
//
// Agent.Run is the loop: poll (the status doubles as the heartbeat),
// apply each generation once, verify before Active, recheck a
// RestartRequired instance until the datastore serves the certificate,
// back off with jitter while the reconciler is away, and keep the last
// applied state in the state directory so a restart resumes where it was.
// NewInstaller and NewVerifier pick the installer and the handshake for
// the configured datastore.
//
// Its parts live in subpackages: agent/rpc seals every message with the
// instance's key; agent/transport is the HTTP protocol on top (the
// agent's Client, which implements Transport, and the reconciler's
// Server); agent/statedir keeps the agent's files; agent/installers writes
// each datastore's configuration; agent/verify proves TLS from the client
// side in each datastore's own protocol.
//
// What newcomers get wrong: an apply that fails still records its
// generation, so the agent does not retry it in a loop; the reconciler
// retries by publishing a new generation.
package agent
