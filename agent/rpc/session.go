package rpc

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultSkew is how far a message's timestamp may be from the
// receiver's clock, either way, before it is refused as stale.
const DefaultSkew = 5 * time.Minute

// WindowSize is how many counter values below the highest one seen a
// session still accepts, each once: messages overtaken in flight (a
// heartbeat passing a long poll) get through; anything older is a replay.
const WindowSize = 64

// Side is the end of the channel a session sits on.
type Side uint8

// Sides.
const (
	SideReconciler Side = 1 // seals ToAgent, opens ToReconciler
	SideAgent      Side = 2 // seals ToReconciler, opens ToAgent
)

// Option configures a Session.
type Option func(*Session)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(s *Session) { s.now = now } }

// WithSkew sets the allowed clock skew (DefaultSkew if unset or not
// positive).
func WithSkew(d time.Duration) Option { return func(s *Session) { s.skew = d } }

// WithLogger sets the logger for refusals, at debug level (nil, the
// default, discards). Lines carry the instance, direction, result, key
// version and counter: never keys, nonces or payloads.
func WithLogger(l *slog.Logger) Option { return func(s *Session) { s.log = l } }

// WithMetrics counts every Open in m (nil, the default, counts nothing).
func WithMetrics(m *Metrics) Option { return func(s *Session) { s.metrics = m } }

// WithPlaintextAllowed lets a session whose keyring is empty seal and
// open the plaintext form: the upgrade path for agents that have no key
// yet. Once the keyring holds a key, plaintext is refused regardless.
func WithPlaintextAllowed(allowed bool) Option {
	return func(s *Session) { s.allowPlaintext = allowed }
}

// WithWatermarks resumes a session from the counters a previous one
// reported by Watermarks, so a restarted sender never reuses a counter
// and a restarted receiver never accepts a message it accepted before.
func WithWatermarks(sent, received uint64) Option {
	return func(s *Session) {
		s.sent.Store(sent)
		s.window.highest = received
		if received > 0 {
			// Which counters below the watermark were accepted is
			// lost: count them all as seen.
			s.window.seen = ^uint64(0)
		}
	}
}

// WithRandom replaces crypto/rand as the nonce source, for tests that
// need a failing reader. Production code has no reason to call it.
func WithRandom(r io.Reader) Option { return func(s *Session) { s.rand = r } }

// Session is one side of the channel with one instance's agent: it seals
// outgoing messages with the keyring's current key and a strictly
// increasing counter, and opens incoming ones against the keyring, the
// clock and a replay window. Keep one Session per instance for as long as
// the process runs: a new one forgets the replay window (see
// WithWatermarks). A Session is safe for concurrent use.
type Session struct {
	instance       string
	out, in        Direction
	keys           *Keyring
	now            func() time.Time
	skew           time.Duration
	log            *slog.Logger
	metrics        *Metrics
	allowPlaintext bool
	rand           io.Reader

	sent atomic.Uint64 // the last counter sealed

	recvMu sync.Mutex
	window window // sealed messages
	// plain is the plaintext form's own window: plaintext is not
	// authenticated, so its counters must never move the sealed window
	// (a forged counter near 2^64 would refuse every sealed message after
	// the instance got its key).
	plain window
}

// NewSession returns side's session for keys' instance.
//
// The first counter it sends is above both the sent watermark (if any)
// and the current Unix time in seconds shifted left by 32 bits, so a
// sender restarted without its watermark still continues above the
// counters it used before, as long as its clock moved forward.
func NewSession(side Side, keys *Keyring, opts ...Option) (*Session, error) {
	if keys == nil {
		return nil, fmt.Errorf("new rpc session: nil keyring")
	}
	if !validInstance(keys.instance) {
		return nil, fmt.Errorf("new rpc session for instance %q: not a DNS-1123 label", keys.instance)
	}
	s := &Session{instance: keys.instance, keys: keys, now: time.Now, rand: rand.Reader}
	switch side {
	case SideReconciler:
		s.out, s.in = ToAgent, ToReconciler
	case SideAgent:
		s.out, s.in = ToReconciler, ToAgent
	default:
		return nil, fmt.Errorf("new rpc session for instance %q: unknown side %d", keys.instance, side)
	}
	for _, o := range opts {
		o(s)
	}
	if s.skew <= 0 {
		s.skew = DefaultSkew
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if t := s.now().Unix(); t > 0 {
		s.sent.Store(max(s.sent.Load(), uint64(t)<<32))
	}
	return s, nil
}

// Instance returns the session's instance.
func (s *Session) Instance() string { return s.instance }

// Keys returns the session's keyring, for rotation.
func (s *Session) Keys() *Keyring { return s.keys }

// Watermarks returns the last counter sealed and the highest counter
// accepted, for a daemon to persist and pass to WithWatermarks.
func (s *Session) Watermarks() (sent, received uint64) {
	sent = s.sent.Load()
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	return sent, s.window.highest
}

// Seal returns payload as a message to the other side, sealed under the
// keyring's current key with the next counter and the current time. With
// no key it returns the plaintext form if the policy allows plaintext,
// ErrNoKey otherwise. Every call uses a new counter: a retried request
// must be sealed again, since the receiver refuses the same bytes twice.
func (s *Session) Seal(payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, fmt.Errorf("seal message for instance %q: %d bytes: %w", s.instance, len(payload), ErrTooLarge)
	}
	version, aead, fresh := s.keys.sealer()
	switch {
	case aead == nil && !s.allowPlaintext:
		return nil, fmt.Errorf("seal message for instance %q: %w", s.instance, ErrNoKey)
	case !fresh:
		return nil, fmt.Errorf("seal message for instance %q, key version %d: %w", s.instance, version, ErrKeyExhausted)
	}
	counter, ok := s.nextCounter()
	if !ok {
		return nil, fmt.Errorf("seal message for instance %q: message counter exhausted", s.instance)
	}

	h := Header{Instance: s.instance, Direction: s.out, KeyVersion: version, Counter: counter, Time: s.now()}
	if aead == nil {
		h.KeyVersion = 0
		b := make([]byte, 0, fixedHeaderSize+len(s.instance)+len(payload))
		b = appendHeader(b, false, h)
		return append(b, payload...), nil
	}
	b := make([]byte, 0, fixedHeaderSize+len(s.instance)+nonceSize+len(payload)+tagSize)
	b = appendHeader(b, true, h)
	nonce := b[len(b) : len(b)+nonceSize]
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return nil, fmt.Errorf("seal message for instance %q: read nonce: %w", s.instance, err)
	}
	b = b[:len(b)+nonceSize]
	return aead.Seal(b, nonce, payload, b), nil
}

// nextCounter returns the next send counter, or false once the counter
// space is used up; it never returns a counter twice.
func (s *Session) nextCounter() (uint64, bool) {
	for {
		c := s.sent.Load()
		if c == ^uint64(0) {
			return 0, false
		}
		if s.sent.CompareAndSwap(c, c+1) {
			return c + 1, true
		}
	}
}

// Open checks and opens a message from the other side and returns its
// header and payload. It refuses, with an error wrapping one of the
// ErrReplay ... ErrMalformed sentinels and counted in the metrics:
// malformed input; a message naming another instance or travelling the
// wrong way; plaintext when the keyring holds a key or the policy forbids
// it; a key version not held; a message failing authentication; a
// timestamp outside the skew; a counter already accepted or below the
// window. The header is authenticated before the clock and the replay
// window look at it, so a forged header can neither pass nor poison the
// window. The payload is a fresh slice, not an alias of data.
func (s *Session) Open(data []byte) (Header, []byte, error) {
	h, payload, err := s.open(data)
	r := reason(err)
	// The direction label is the one this session receives, whatever a
	// (possibly forged or reflected) header claims.
	s.metrics.count(s.in, r)
	if err != nil {
		result := resultLabel(r)
		s.log.Debug("rpc message refused", "instance", s.instance, "direction", s.in.String(),
			"result", result, "key_version", h.KeyVersion, "counter", h.Counter)
		return Header{}, nil, fmt.Errorf("open message for instance %q: %w", s.instance, err)
	}
	return h, payload, nil
}

func (s *Session) open(data []byte) (Header, []byte, error) {
	e, err := parseFor(data, s.instance)
	h := e.header
	switch {
	case err != nil:
		return h, nil, err
	case h.Instance != s.instance:
		return h, nil, fmt.Errorf("header names instance %q: %w", h.Instance, ErrWrongInstance)
	case h.Direction != s.in:
		return h, nil, fmt.Errorf("sent %s: %w", h.Direction, ErrWrongDirection)
	}
	var payload []byte
	if e.sealed {
		aead, keyed := s.keys.opener(h.KeyVersion)
		if aead == nil {
			if !keyed {
				return h, nil, fmt.Errorf("key version %d, but no key held: %w", h.KeyVersion, ErrUnknownKeyVersion)
			}
			return h, nil, fmt.Errorf("key version %d not held (holding %v): %w", h.KeyVersion, s.keys.Versions(), ErrUnknownKeyVersion)
		}
		payload, err = aead.Open(nil, e.nonce, e.body, e.ad)
		if err != nil {
			return h, nil, fmt.Errorf("key version %d: %w", h.KeyVersion, ErrTampered)
		}
	} else {
		// The keyring's state is what counts, not the message's claims:
		// an attacker who strips the seal meets a receiver that has a key.
		if s.keys.HasKey() {
			return h, nil, fmt.Errorf("instance has a key: %w", ErrPlaintextRefused)
		}
		if !s.allowPlaintext {
			return h, nil, fmt.Errorf("policy does not allow plaintext: %w", ErrPlaintextRefused)
		}
		payload = append([]byte(nil), e.body...)
	}
	now := s.now()
	if d := h.Time.Sub(now); d > s.skew || d < -s.skew {
		return h, nil, fmt.Errorf("timestamp %s off the receiver's clock, above the %s allowed: %w", d.Round(time.Second), s.skew, ErrStale)
	}
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	w := &s.window
	if !e.sealed {
		w = &s.plain
	}
	if !w.accept(h.Counter) {
		return h, nil, fmt.Errorf("counter %d already seen or below the window: %w", h.Counter, ErrReplay)
	}
	return h, payload, nil
}

// window is a sliding replay window over the last WindowSize counters,
// as in IPsec and WireGuard: highest is the highest counter accepted and
// bit i of seen says whether highest-i was.
type window struct {
	highest uint64
	seen    uint64
}

// accept reports whether c is new and, if so, records it.
func (w *window) accept(c uint64) bool {
	switch {
	case c > w.highest:
		shift := c - w.highest
		if shift >= WindowSize {
			w.seen = 0
		} else {
			w.seen <<= shift
		}
		w.seen |= 1
		w.highest = c
		return true
	case w.highest-c >= WindowSize:
		return false
	default:
		bit := uint64(1) << (w.highest - c)
		if w.seen&bit != 0 {
			return false
		}
		w.seen |= bit
		return true
	}
}

// String shows the instance and the directions, never keys.
func (s *Session) String() string {
	return fmt.Sprintf("rpc.Session{instance: %q, seals: %s, opens: %s}", s.instance, s.out, s.in)
}

// Format keeps every fmt verb on String.
func (s *Session) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// LogValue shows the instance and the directions to slog.
func (s *Session) LogValue() slog.Value {
	return slog.GroupValue(slog.String("instance", s.instance),
		slog.String("seals", s.out.String()), slog.String("opens", s.in.String()))
}
