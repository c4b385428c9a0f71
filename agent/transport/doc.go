// Package transport is the HTTP protocol between the reconciler and its
// guest agents, on top of agent/rpc's sealed envelope: the agent's side is
// Client, which implements agent.Transport, and the reconciler's side is
// Server, an http.Handler the daemon mounts on its agent listener.
//
// # Routes
//
//	POST /v1/agents/{instance}/poll    body and reply: an rpc envelope
//	POST /v1/agents/{instance}/enroll  body: rpc.KeyRequest (JSON); reply: an rpc key delivery
//
// A poll carries the agent's status (which is its heartbeat) and a fresh
// random request ID, sealed under the instance's key. The server records
// the status, then holds the request (the long poll, so agents behind NAT
// need no inbound port) until there is desired state of a generation
// above the one the agent applied, a key to deliver, or the wait the
// agent asked for (bounded by the server) has passed. The reply is sealed
// and echoes the request ID, so a reply withheld by an attacker and
// delivered later, to another request, is refused even inside the replay
// window. A refused message gets 403 with the rpc result label as its
// body ("replay", "stale", ...) and nothing else; a malformed one 400.
//
// Served through a Listener (the daemon does), a poll that must wait is
// parked rather than held: the server takes the connection from net/http,
// keeps the TLS connection, the request ID and a timer, and when it
// answers hands the connection back to the Listener for the agent's next
// request. An agent then costs its TLS connection (about 8 KB: buffers
// and cipher state) and a few hundred bytes between heartbeats, not two
// goroutines and net/http's buffers besides (park.go).
// Served any other way (httptest, behind a recorder) polls are held.
//
// # Keys
//
// The server side holds, per instance, the current key and at most one
// next key (a rotation in progress). A rotation follows agent/rpc's
// protocol: the next key travels inside a reply sealed under the current
// one; the agent stores it, promotes it, and its next poll, sealed under
// the new version, is the acknowledgement: only then does the server
// promote it and retire the old version (and call the KeyPromoted hook,
// for the daemon to persist). Until then the old key keeps working and
// the new one is resent with every reply, so a lost reply costs nothing.
// The agent retires the old version when the first reply under the new
// one reaches it.
//
// # Enrollment and plaintext
//
// A new agent has no key. `reconciler agent bootstrap NAME` gives it a
// one-time token (a file on the host) and the server the same token. The
// agent generates an X25519 key pair and posts a KeyRequest: its public
// key and an HMAC of it under the token. The server checks the proof and
// replies with the instance's current key sealed to that public key
// (rpc.SealKeyFor). Neither the key nor the token crosses the wire, and
// the exchange runs over HTTPS that the agent verifies against its
// configured CA. An agent whose proof holds but whose instance is not
// registered or has no key yet is held until it has (WithEnrollWait), so
// an agent set up before its merge request is applied enrolls without a
// retry. The token is one-time: the server consumes the stored
// token before the key leaves. So that a reply lost on the way costs a
// retry rather than a new bootstrap, the server keeps the used token in
// memory for ten minutes or until the agent's first sealed poll, whichever
// comes first; a replayed request only yields a delivery nobody else can
// open.
//
// An agent whose key the server refuses (tampered or an unknown version:
// the reconciler's key store was restored without it, say) enrolls again
// when a new token file is on the host: bootstrap re-keys a host without
// anyone touching its state directory. An agent that sealed under a next
// key the restarted reconciler never stored goes back to its previous key.
//
// An agent that has no key and no token may talk the plaintext form only
// when both sides allow it (Trove's upgrade path for agents that predate
// secure RPC): the agent's allowPlaintext setting, the server's
// WithPlaintextAllowed and the instance's Keys.AllowPlaintext
// (rpcEncryption: disabled), and only while the server holds no key for
// the instance. Once it does, plaintext is refused as a downgrade and the
// agent must enroll with a token. Nothing authenticates a plaintext poll,
// so the server never sends a private key in a plaintext reply (the
// desired state says the bundle was withheld, and the agent reports
// Error), and Observed marks a plaintext status as unsealed: coverage must
// not count it as verified.
//
// # What newcomers get wrong
//
//   - A server's http.Server WriteTimeout shorter than the long poll: the
//     reply is cut. Set it above MaxWait.
//   - Serving a Listener with ServeTLS: its connections are TLS already.
//     Use Serve, with the Listener's ConnContext.
//   - Logging a body. Bodies hold keys; log the instance, the result
//     label and the generation.
package transport
