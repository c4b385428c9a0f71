package rpc

import "errors"

// Reasons a message is refused. Open wraps exactly one of them, with the
// instance's name, in every error it returns, so callers match them with
// errors.Is and Reason maps them to the metric's result label. None of
// them, nor any error of this package, carries key, nonce or payload
// bytes.
var (
	// ErrReplay: the counter is not above the replay window, or is
	// inside it and was already accepted.
	ErrReplay = errors.New("replayed message")
	// ErrStale: the timestamp is further from the receiver's clock than
	// the allowed skew, in either direction.
	ErrStale = errors.New("message timestamp outside the allowed clock skew")
	// ErrTampered: the message failed authentication. Any change to the
	// header, nonce or ciphertext, or a message sealed under another key
	// (another instance's, say) with the same version number, ends here.
	ErrTampered = errors.New("message failed authentication")
	// ErrWrongInstance: the header names an instance other than the
	// session's.
	ErrWrongInstance = errors.New("message for another instance")
	// ErrWrongDirection: the message travels the other way, for example
	// a message the reconciler sealed reflected back to it.
	ErrWrongDirection = errors.New("message travelling the wrong direction")
	// ErrUnknownKeyVersion: the receiver holds no key of that version
	// (never added, or already retired), or no key at all.
	ErrUnknownKeyVersion = errors.New("unknown key version")
	// ErrPlaintextRefused: a plaintext message reached a receiver that has
	// a key for the instance, or whose policy does not allow plaintext.
	ErrPlaintextRefused = errors.New("plaintext message refused")
	// ErrMalformed: truncated, oversized or garbage input, an unknown
	// magic or format version.
	ErrMalformed = errors.New("malformed message")
)

// Errors of the sending side and of key management.
var (
	// ErrNoKey: Seal has no key to seal with and the policy does not
	// allow plaintext.
	ErrNoKey = errors.New("no key for the instance and plaintext not allowed")
	// ErrKeyExhausted: the current key version sealed MaxSealsPerKey
	// messages; rotate it.
	ErrKeyExhausted = errors.New("key version used for too many messages; rotate it")
	// ErrTooLarge: the payload is above MaxPayload.
	ErrTooLarge = errors.New("payload too large")
	// ErrKeyringFull: the keyring already holds two versions; retire one
	// before adding another.
	ErrKeyringFull = errors.New("keyring already holds two key versions")
	// ErrBadKey: a key of the wrong size, all zeros, or a version that
	// is zero, already held, or not above a retired one.
	ErrBadKey = errors.New("unusable key")
	// ErrRetireCurrent: the current key cannot be retired; promote
	// another version first.
	ErrRetireCurrent = errors.New("cannot retire the current key version")
)

// Result labels of reconciler_rpc_messages_total.
const (
	ResultOK               = "ok"
	ResultReplay           = "replay"
	ResultStale            = "stale"
	ResultTampered         = "tampered"
	ResultWrongInstance    = "wrong_instance"
	ResultWrongDirection   = "wrong_direction"
	ResultUnknownKey       = "unknown_key_version"
	ResultPlaintextRefused = "plaintext_refused"
	ResultMalformed        = "malformed"
)

// results lists the refusals in a fixed order: Metrics resolves one
// counter per entry, indexed by reason.
var results = [...]struct {
	err   error
	label string
}{
	{ErrReplay, ResultReplay},
	{ErrStale, ResultStale},
	{ErrTampered, ResultTampered},
	{ErrWrongInstance, ResultWrongInstance},
	{ErrWrongDirection, ResultWrongDirection},
	{ErrUnknownKeyVersion, ResultUnknownKey},
	{ErrPlaintextRefused, ResultPlaintextRefused},
	{ErrMalformed, ResultMalformed},
}

// Reason returns the result label for an error of Open: ResultOK for nil,
// one of the Result constants for a refusal, "" for an error that is no
// refusal of this package.
func Reason(err error) string { return resultLabel(reason(err)) }

// reason returns the index of err's result label: 0 for nil (ResultOK),
// i+1 for results[i], -1 for an error that is no refusal of this package.
func reason(err error) int {
	if err == nil {
		return 0
	}
	for i, r := range results {
		if errors.Is(err, r.err) {
			return i + 1
		}
	}
	return -1
}

// resultLabel returns the result label of a reason index.
func resultLabel(i int) string {
	switch {
	case i == 0:
		return ResultOK
	case i < 0 || i > len(results):
		return ""
	}
	return results[i-1].label
}
