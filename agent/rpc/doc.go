// Package rpc seals the messages between the reconciler and one
// instance's guest agent: an authenticated, encrypted envelope bound to
// the instance, the direction, the key version, a message counter and a
// timestamp, plus the one-time delivery of the instance's key to an agent
// that has none. A sealed message is a []byte: the HTTP body of a request
// or a response. The transport, the long poll and the daemon sit on top
// and are not here.
//
// Each side keeps one Session per instance for the life of the process: a
// Keyring of the instance's keys, a send counter and a replay window.
// Seal makes a message; Open checks one and returns its Header and
// payload, or an error wrapping exactly one refusal sentinel (ErrReplay,
// ErrStale, ErrTampered, ErrWrongInstance, ErrWrongDirection,
// ErrUnknownKeyVersion, ErrPlaintextRefused, ErrMalformed), counted in
// reconciler_rpc_messages_total{direction, result}; Reason maps an error
// to that result label.
//
// # Cipher
//
// AES-256-GCM with a random 96-bit nonce from crypto/rand per message.
// The choice was measured: XChaCha20-Poly1305, whose 192-bit nonces need
// no usage limit, added 9% to a bare 1 KiB loopback HTTP echo on the
// reference machine (AMD EPYC, AVX2), where AES-256-GCM adds about 6%
// (BenchmarkRoundTrip, median of per-pair ratios); through the real agent
// protocol (agent/transport's BenchmarkPollRoundTrip: JSON, the long-poll
// handler) sealing adds 3-4%, inside the 5% budget. Database hosts are
// x86-64 or arm64 servers with AES instructions, where Go's AES is
// hardware-backed and constant-time.
// The price of GCM's shorter random nonce is a limit: a nonce repeat must
// stay unlikely (below 2^-32 up to 2^32 messages per key, NIST SP
// 800-38D), so each side seals at most MaxSealsPerKey (2^31) messages per
// key version, after which Seal returns ErrKeyExhausted and the key must
// rotate; at one message a second that is 68 years. Nonces are never
// derived from the counter: a counter reset after a crash would then
// repeat a nonce, which under GCM reveals the authentication key.
//
// # Wire format
//
// All integers big-endian.
//
//	offset  size  field
//	0       3     magic: "RCS" sealed, "RCP" plaintext
//	3       1     format version: 1
//	4       1     direction: 1 to the agent, 2 to the reconciler
//	5       4     key version: 0 in plaintext, never 0 when sealed
//	9       8     counter: strictly increasing per sender, never 0
//	17      8     timestamp: Unix nanoseconds, the sender's clock
//	25      1     n: instance name length, 1..63
//	26      n     instance name, a DNS-1123 label as in the specs
//	sealed:
//	26+n    12    nonce, random
//	38+n    ...   AES-256-GCM ciphertext of the payload, then its 16-byte tag
//	plaintext:
//	26+n    ...   payload, as is
//
// In a sealed message the associated data is every byte before the
// ciphertext (header and nonce), so a change to any byte fails
// authentication. The overhead is 54+n bytes sealed and 26+n plaintext; a
// payload is at most MaxPayload (4 MiB) and a transport should refuse a
// body above MaxMessage before reading it. The two magics differ in two
// bits, so no single flipped bit turns one form into the other, and the
// form a receiver accepts depends on its own state, never on the message.
//
// # Threat model
//
// The attacker controls the network between the reconciler and the
// agents: reads, drops, delays, reorders, replays, truncates and alters
// messages, reflects a message back to its sender, and moves messages
// between instances; the attacker may own other instances' hosts and
// thus their keys, and may see logs, metrics and status output. Against
// that the envelope gives confidentiality and integrity of the payload,
// authenticity of the whole header, binding to one instance (its name is
// authenticated and its key is its own) and to one direction, refusal of
// replays and of messages older or newer than the allowed skew
// (DefaultSkew, 5 minutes, either way), refusal of retired keys and of
// plaintext once an instance has a key. It does not hide traffic volume
// or timing, the instance name, or the fact that two parties talk; it
// does not protect an agent host the attacker owns (the key is on disk
// there), nor a keyless agent in plaintext mode, which has no protection
// at all: that mode exists for the upgrade path only and is off unless
// configured. Key bytes are kept in vault.Secret and in Keyring, whose
// String, Format and LogValue print versions only; no error or log line
// of this package holds a key, a nonce, a token or a payload, and the
// tests plant a canary to prove it.
//
// # Replay and reordering
//
// A receiver keeps a sliding window of WindowSize (64) counters below the
// highest it accepted, as in IPsec and WireGuard: a counter above the
// highest is accepted and moves the window; one inside it is accepted
// once; one below it is a replay. So a heartbeat that overtakes a long
// poll in flight gets through, and no message gets through twice. The
// check runs after authentication, so forged counters cannot move the
// window. Plaintext messages, which nothing authenticates, have a window
// of their own: a forged plaintext counter near 2^64 cannot refuse the
// sealed messages that follow once the instance has a key, and it is not
// part of the persisted Watermarks. A sender's first counter is above both its persisted watermark
// and the Unix time in seconds shifted left 32 bits, so a sender that
// restarts without state still moves forward if its clock did. A
// receiver that restarts without state forgets its window and would take
// a replay of a message younger than the skew: daemons persist
// Session.Watermarks and pass them back through WithWatermarks.
//
// # Plaintext and downgrade
//
// An agent installed before secure RPC, or bootstrapping, has no key.
// Only for it, and only while the receiver's policy allows it
// (WithPlaintextAllowed), a plaintext form exists: the same header with
// the "RCP" magic, key version 0, and the payload in clear. Open accepts
// it only when the receiver's own keyring is empty AND the policy allows
// plaintext; once the keyring holds any key, every plaintext message is
// refused (ErrPlaintextRefused), so stripping the seal from a message
// never downgrades a keyed instance. Seal writes plaintext only when its
// keyring is empty and the policy allows it, and ErrNoKey otherwise.
//
// # Key rotation
//
// A Keyring holds the current version (which seals) and at most one
// other (which only opens). The reconciler drives a rotation from
// version v to v+1:
//
//  1. The reconciler makes the new key (vault.KeyWrapper.NewKey), stores
//     it wrapped, and Adds v+1 to its keyring. It still seals under v.
//  2. It sends the new key to the agent in a message sealed under v.
//  3. The agent Adds v+1 and Promotes it: from now it seals under v+1 and
//     still opens v. Its acknowledgement, sealed under v+1, proves that it
//     holds the new key.
//  4. On the first authenticated message under v+1 from the agent
//     (Header.KeyVersion), the reconciler Promotes v+1 and Retires v.
//  5. On the first message under v+1 from the reconciler, the agent
//     Retires v.
//
// A retired version is refused from then on (ErrUnknownKeyVersion) and
// can never be added again, since Add refuses versions not above the
// highest retired one. Until step 4 the old key keeps working, so a lost
// acknowledgement costs nothing: the reconciler resends the key under v.
//
// # Key delivery
//
// A keyless agent never receives its key in clear:
//
//  1. `reconciler agent bootstrap NAME` makes a one-time token
//     (NewBootstrapToken) that reaches the host out of band, with the
//     agent's configuration. The reconciler keeps the token (wrapped)
//     until it is used, then forgets it.
//  2. The agent makes a fresh X25519 key pair and sends a KeyRequest: its
//     public key and HMAC-SHA256(token, context, instance, public key).
//     The token itself never crosses the wire; an eavesdropper who swaps
//     the public key breaks the proof (KeyRequest.Verify).
//  3. The reconciler seals the instance key to that public key
//     (SealKeyFor): an ephemeral X25519 key pair; HKDF-SHA256 over the
//     shared secret and the token, salted with both public keys, with
//     the instance name in the info; AES-256-GCM over the key, with the
//     format, key version, ephemeral public key, SHA-256 of the token and
//     the instance name as associated data.
//  4. The agent opens it (OpenKey) with its private key and the token,
//     Adds the key to its keyring and from then on refuses plaintext.
//
// Only the agent's private key opens the delivery, so a later leak of the
// token does not reveal the key; only a holder of the token can make a
// delivery the agent accepts, so an active attacker cannot plant a key of
// their own. The request and delivery should still travel over
// server-verified TLS.
//
// # What newcomers get wrong
//
//   - Resending the same bytes on retry. Every attempt must Seal again:
//     the receiver refuses the same message twice, by design.
//   - A new Session per request. The replay window and the counter live
//     in the Session; a new one per request accepts every replay.
//   - Trusting a header before Open returns nil. The fields are
//     unauthenticated until then; Open returns a zero Header on refusal
//     for that reason.
//   - Falling back to plaintext when sealing or opening fails. Plaintext
//     depends on the keyring being empty, never on an error.
//   - Retiring the old key when the new one is sent rather than when the
//     agent's message under it arrives: a lost message then strands the
//     agent with no key the reconciler accepts.
//   - Logging a request or response body "at debug level only". Trove did
//     that with its keys. Log the Header's fields, never the bytes.
package rpc
