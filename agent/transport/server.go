package transport

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/rpc"
	"github.com/reconciler-dev/reconciler/vault"
)

// Key is one version of an instance's RPC key.
type Key struct {
	Version uint32
	Secret  vault.Secret
}

// Keys is what the server holds for an instance: none (the zero value:
// the agent may only talk plaintext, if allowed), a current key, and
// during a rotation the next one, which the agent has not acknowledged.
type Keys struct {
	Current *Key
	Next    *Key
	// AllowPlaintext lets this instance's agent talk plaintext while the
	// server holds no key for it (rpcEncryption: disabled), if the server
	// allows plaintext at all (WithPlaintextAllowed). Nothing
	// authenticates a plaintext agent: its status is marked unsealed in
	// Observed, and no private key is ever sent to it.
	AllowPlaintext bool
}

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithServerLogger sets the logger (nil, the default, discards).
func WithServerLogger(l *slog.Logger) ServerOption { return func(s *Server) { s.log = l } }

// WithServerRegisterer registers the server's metrics, the RPC message
// counters among them.
func WithServerRegisterer(r prometheus.Registerer) ServerOption {
	return func(s *Server) { s.reg = r }
}

// WithPlaintextAllowed lets agents of instances the server holds no key
// for talk plaintext: the upgrade path, off by default.
func WithPlaintextAllowed(allowed bool) ServerOption {
	return func(s *Server) { s.allowPlaintext = allowed }
}

// WithTokens enables enrollment with the given token store; without it
// every enrollment is refused.
func WithTokens(t Tokens) ServerOption { return func(s *Server) { s.tokens = t } }

// WithStatusHook calls f with every status an agent reports (each poll,
// so each heartbeat), after the server recorded it. f must not block.
func WithStatusHook(f func(ctx context.Context, s agent.Status)) ServerOption {
	return func(s *Server) { s.onStatus = f }
}

// WithKeyPromotedHook calls f when an agent acknowledged a rotation: from
// then on version is the instance's only key. The daemon persists that.
func WithKeyPromotedHook(f func(ctx context.Context, instance string, version uint32)) ServerOption {
	return func(s *Server) { s.onPromoted = f }
}

// WithEnrollWait sets how long an enrollment with a valid token is held
// while its instance is not registered or has no RPC key yet, to be
// answered the moment the key is there (default DefaultEnrollWait; 0
// answers at once). An agent set up before the reconciler made its
// instance's key then enrolls without a retry.
func WithEnrollWait(d time.Duration) ServerOption {
	return func(s *Server) { s.enrollWait = max(d, 0) }
}

// DefaultEnrollWait is how long an enrollment waits for its instance's
// key by default: well within the 30 seconds a Client waits for the answer.
const DefaultEnrollWait = 20 * time.Second

// WithServerClock replaces time.Now for the sessions, for tests.
func WithServerClock(now func() time.Time) ServerOption { return func(s *Server) { s.now = now } }

// Server is the reconciler's side of the agent protocol. Register each
// instance, Publish its desired state, and serve Handler. A Server is
// safe for concurrent use.
type Server struct {
	allowPlaintext bool
	tokens         Tokens
	log            *slog.Logger
	reg            prometheus.Registerer
	now            func() time.Time
	onStatus       func(context.Context, agent.Status)
	onPromoted     func(context.Context, string, uint32)
	enrollWait     time.Duration

	rpcMetrics  *rpc.Metrics
	lastSeen    *prometheus.GaugeVec
	enrollments *prometheus.CounterVec

	mu        sync.RWMutex
	instances map[string]*instance
	// registered is closed and replaced when an instance is registered,
	// for enrollments waiting for theirs.
	registered chan struct{}
}

// instance is the server's state for one agent.
type instance struct {
	name    string
	session *rpc.Session

	mu      sync.Mutex
	keys    map[uint32]vault.Secret // the versions the keyring holds
	next    uint32                  // a rotation's version, until acknowledged
	desired *agent.Desired
	changed chan struct{} // closed and replaced when desired or next changes
	status  agent.Status
	sealed  bool // the last status came sealed
	seen    time.Time
	// pending is the token of the last enrollment, consumed in the
	// store already, kept here for a short grace so that an agent whose
	// reply was lost can retry; the first sealed poll ends it.
	pending      vault.Secret
	pendingUntil time.Time
	// parked is the agent's poll waiting without its goroutine (park.go).
	parked *parked
}

// enrollGrace is how long a used token still works for a retry, in this
// process only.
const enrollGrace = 10 * time.Minute

// maxPollBody bounds a poll request before it is authenticated: a status
// is a few hundred bytes of JSON.
const maxPollBody = 64 << 10

// NewServer returns a server with no instances.
func NewServer(opts ...ServerOption) *Server {
	s := &Server{now: time.Now, instances: map[string]*instance{}, registered: make(chan struct{}), enrollWait: DefaultEnrollWait}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.rpcMetrics = rpc.NewMetrics(s.reg)
	s.lastSeen = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "reconciler_agent_last_seen_timestamp_seconds",
		Help: "When each instance's agent last reported (an authenticated poll), in Unix seconds.",
	}, []string{"instance"})
	s.enrollments = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "reconciler_agent_enrollments_total",
		Help: "Agent enrollments by result: ok, no_token, bad_proof, no_key, unknown_instance, malformed.",
	}, []string{"result"})
	for _, r := range []string{"ok", "no_token", "bad_proof", "no_key", "unknown_instance", "malformed"} {
		s.enrollments.WithLabelValues(r)
	}
	if s.reg != nil {
		s.reg.MustRegister(s.lastSeen, s.enrollments)
	}
	return s
}

// Register adds an instance with the keys the daemon holds for it.
// opts pass through to its rpc.Session: rpc.WithWatermarks resumes the
// counters a previous process persisted (Watermarks).
func (s *Server) Register(name string, keys Keys, opts ...rpc.Option) error {
	ring := rpc.NewKeyring(name)
	held := map[uint32]vault.Secret{}
	var next uint32
	for _, k := range []*Key{keys.Current, keys.Next} {
		if k == nil {
			continue
		}
		if err := ring.Add(k.Version, k.Secret); err != nil {
			return fmt.Errorf("register instance %q: %w", name, err)
		}
		held[k.Version] = k.Secret
	}
	if keys.Next != nil {
		if keys.Current == nil || keys.Next.Version <= keys.Current.Version {
			return fmt.Errorf("register instance %q: a next key needs a current key of a lower version", name)
		}
		next = keys.Next.Version
	}
	opts = append([]rpc.Option{rpc.WithPlaintextAllowed(s.allowPlaintext && keys.AllowPlaintext), rpc.WithMetrics(s.rpcMetrics),
		rpc.WithLogger(s.log), rpc.WithClock(s.now)}, opts...)
	sess, err := rpc.NewSession(rpc.SideReconciler, ring, opts...)
	if err != nil {
		return fmt.Errorf("register instance %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.instances[name] != nil {
		return fmt.Errorf("register instance %q: already registered", name)
	}
	s.instances[name] = &instance{name: name, session: sess, keys: held, next: next, changed: make(chan struct{})}
	close(s.registered)
	s.registered = make(chan struct{})
	return nil
}

// Unregister forgets an instance and removes its series; its agent's
// polls get 404 from then on.
func (s *Server) Unregister(name string) {
	s.mu.Lock()
	inst := s.instances[name]
	delete(s.instances, name)
	s.mu.Unlock()
	if inst != nil {
		inst.mu.Lock()
		inst.wake()
		inst.mu.Unlock()
	}
	s.lastSeen.DeleteLabelValues(name)
}

func (s *Server) lookup(name string) *instance {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.instances[name]
}

var errUnknownInstance = errors.New("instance not registered")

// Publish makes d the instance's desired state and wakes its agent's
// poll. A generation not above the published one is ignored.
func (s *Server) Publish(name string, d agent.Desired) error {
	inst := s.lookup(name)
	if inst == nil {
		return fmt.Errorf("publish desired state of %q: %w", name, errUnknownInstance)
	}
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.desired != nil && d.Generation <= inst.desired.Generation {
		return nil
	}
	inst.desired = &d
	inst.wake()
	return nil
}

// Rotate gives an instance a new key version, above the current one. For
// an instance without a key it becomes the current key at once (from then
// on its agent must enroll; plaintext is refused). Otherwise the new key
// is delivered under the current one and replaces it when the agent
// acknowledges it (WithKeyPromotedHook). The daemon must store the new key
// (wrapped) before calling Rotate: after a restart it registers both
// (Keys.Next), or the agent, which may already seal under the new
// version, falls back to the old one.
func (s *Server) Rotate(name string, k Key) error {
	inst := s.lookup(name)
	if inst == nil {
		return fmt.Errorf("rotate key of %q: %w", name, errUnknownInstance)
	}
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.next != 0 {
		return fmt.Errorf("rotate key of %q: version %d is still waiting for the agent's acknowledgement", name, inst.next)
	}
	ring := inst.session.Keys()
	if cur := ring.Current(); k.Version <= cur {
		return fmt.Errorf("rotate key of %q: version %d is not above the current version %d", name, k.Version, cur)
	}
	if err := ring.Add(k.Version, k.Secret); err != nil {
		return fmt.Errorf("rotate key of %q: %w", name, err)
	}
	inst.keys[k.Version] = k.Secret
	if ring.Current() != k.Version {
		inst.next = k.Version
	}
	inst.wake()
	return nil
}

// Observed is what the server last heard from an instance's agent.
type Observed struct {
	Status   agent.Status
	LastSeen time.Time // zero: never
	// Sealed says the status came in a sealed message, so the agent that
	// holds the instance's key sent it. A plaintext status may come from
	// anyone who can reach the listener: do not count it as verified.
	Sealed bool
	// KeyVersion is the version the server seals with; NextKeyVersion a
	// rotation waiting for the agent's acknowledgement (0: none).
	KeyVersion, NextKeyVersion uint32
}

// Observed returns what the instance's agent last reported.
func (s *Server) Observed(name string) (Observed, bool) {
	inst := s.lookup(name)
	if inst == nil {
		return Observed{}, false
	}
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return Observed{Status: inst.status, LastSeen: inst.seen, Sealed: inst.sealed,
		KeyVersion: inst.session.Keys().Current(), NextKeyVersion: inst.next}, true
}

// Watermarks returns the instance's session counters, for the daemon to
// persist and pass back to Register through rpc.WithWatermarks.
func (s *Server) Watermarks(name string) (sent, received uint64, ok bool) {
	inst := s.lookup(name)
	if inst == nil {
		return 0, 0, false
	}
	sent, received = inst.session.Watermarks()
	return sent, received, true
}

// Handler serves the agent routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/agents/{instance}/poll", s.poll)
	mux.HandleFunc("POST /v1/agents/{instance}/enroll", s.enroll)
	return mux
}

// refuse answers a refused request: the status and a short reason,
// never anything from the request.
func refuse(w http.ResponseWriter, code int, reason string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, reason+"\n")
}

func (s *Server) poll(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("instance")
	inst := s.lookup(name)
	if inst == nil {
		refuse(w, http.StatusNotFound, "unknown_instance")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPollBody))
	if err != nil {
		refuse(w, http.StatusRequestEntityTooLarge, "too_large")
		return
	}
	h, payload, err := inst.session.Open(body)
	if err != nil {
		reason := rpc.Reason(err)
		code := http.StatusForbidden
		if reason == rpc.ResultMalformed {
			code = http.StatusBadRequest
		}
		s.log.WarnContext(ctx, "agent message refused", "instance", name, "result", reason)
		refuse(w, code, reason)
		return
	}
	var req pollRequest
	if err := json.Unmarshal(payload, &req); err != nil || len(req.ID) != requestIDSize {
		// Authenticated, so the agent is ours but speaks another
		// version of the protocol.
		s.log.WarnContext(ctx, "agent poll payload not understood", "instance", name)
		refuse(w, http.StatusBadRequest, "bad_payload")
		return
	}
	req.Status.Instance = name // the header's name is authenticated; the payload's is not needed
	s.heard(ctx, inst, h, req.Status)

	wait := min(max(time.Duration(req.WaitMS)*time.Millisecond, 0), MaxWait)
	if s.park(w, r, inst, req, h.Sealed(), wait) {
		return // answered from park.go
	}
	reply, ok := s.waitForChange(ctx, inst, req.Status.Generation, wait)
	if !ok {
		if ctx.Err() == nil {
			refuse(w, http.StatusNotFound, "unknown_instance") // unregistered while the poll waited
		}
		return
	}
	data, err := s.sealReply(ctx, inst, reply, req.ID, h.Sealed())
	if err != nil {
		refuse(w, http.StatusInternalServerError, "seal_failed")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(data)
}

// sealReply seals reply to the poll with request ID id; a plaintext poll
// (sealed false) never gets a private key.
func (s *Server) sealReply(ctx context.Context, inst *instance, reply pollReply, id []byte, sealed bool) ([]byte, error) {
	if reply.Desired != nil && reply.Desired.Bundle != nil && !sealed {
		// Nothing authenticates a plaintext poll: whoever sent it must
		// not get the private key.
		reply.Desired.Bundle = nil
		reply.Desired.Withheld = "the certificate's private key is only sent sealed, and this agent has no RPC key: enroll it (reconciler agent bootstrap NAME) and enable rpcEncryption"
	}
	reply.ID = id
	data, err := json.Marshal(reply)
	if err == nil {
		data, err = inst.session.Seal(data)
	}
	if err != nil {
		s.log.ErrorContext(ctx, "cannot seal reply to agent", "instance", inst.name, "error", err)
		return nil, err
	}
	return data, nil
}

// heard records an opened poll: status, last seen, whether it was
// sealed, and the key version it was sealed under, which completes a
// rotation; a sealed poll also ends an enrollment's grace.
func (s *Server) heard(ctx context.Context, inst *instance, h rpc.Header, st agent.Status) {
	inst.mu.Lock()
	inst.status, inst.seen, inst.sealed = st, s.now(), h.Sealed()
	if h.Sealed() {
		inst.pending = nil // the agent holds its key: no more retries of its enrollment
	}
	if d := inst.desired; d != nil && d.Bundle != nil && h.Sealed() && st.Generation >= d.Generation {
		// The agent has the generation: its private key leaves this
		// process's memory now, not at the next publish.
		kept := *d
		kept.Bundle, kept.Withheld = nil, "the certificate was delivered and is no longer held; the reconciler publishes a new generation if it is needed again"
		inst.desired = &kept
	}
	promoted := uint32(0)
	if h.Sealed() && inst.next != 0 && h.KeyVersion == inst.next {
		ring := inst.session.Keys()
		old := ring.Current()
		if err := ring.Promote(inst.next); err == nil {
			if err := ring.Retire(old); err == nil {
				delete(inst.keys, old)
			}
			promoted, inst.next = inst.next, 0
		}
	}
	inst.mu.Unlock()

	s.lastSeen.WithLabelValues(inst.name).Set(float64(s.now().Unix()))
	if promoted != 0 {
		s.log.InfoContext(ctx, "agent acknowledged the new RPC key", "instance", inst.name, "key_version", promoted)
		if s.onPromoted != nil {
			s.onPromoted(ctx, inst.name, promoted)
		}
	}
	if s.onStatus != nil {
		s.onStatus(ctx, st)
	}
}

// waitForChange returns the reply for an agent at generation applied: at
// once if there is newer desired state or a key to deliver, else when
// either appears or wait has passed. It reports false if ctx ended first
// or the instance was unregistered.
func (s *Server) waitForChange(ctx context.Context, inst *instance, applied uint64, wait time.Duration) (pollReply, bool) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		inst.mu.Lock()
		reply := inst.replyLocked(applied)
		changed := inst.changed
		inst.mu.Unlock()
		if reply.Desired != nil || reply.NextKey != nil {
			return reply, true
		}
		select {
		case <-ctx.Done():
			return reply, false
		case <-timer.C:
			return reply, true
		case <-changed:
			if s.lookup(inst.name) != inst {
				return reply, false
			}
		}
	}
}

// replyLocked is the reply for an agent at generation applied: newer
// desired state, a key to deliver, or neither; inst.mu is held.
func (inst *instance) replyLocked(applied uint64) pollReply {
	var reply pollReply
	if d := inst.desired; d != nil && d.Generation > applied {
		reply.Desired = toWire(d)
	}
	if inst.next != 0 {
		reply.NextKey = &keyWire{Version: inst.next, Key: inst.keys[inst.next].Bytes()}
	}
	return reply
}

// wake tells waiting polls, held or parked, that something changed;
// inst.mu is held.
func (inst *instance) wake() {
	close(inst.changed)
	inst.changed = make(chan struct{})
	if p := inst.parked; p != nil {
		go p.answer()
	}
}

// enroll trades a one-time token for the instance's current key. A
// request whose proof holds is kept waiting (enrollWait) while the
// instance is not registered or has no key yet; its token is used up only
// when the key is sent.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := r.PathValue("instance")
	fail := func(code int, result string) {
		s.enrollments.WithLabelValues(result).Inc()
		s.log.WarnContext(ctx, "agent enrollment refused", "instance", name, "result", result)
		refuse(w, code, result)
	}
	var req rpc.KeyRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxEnrollBody)).Decode(&req); err != nil {
		fail(http.StatusBadRequest, "malformed")
		return
	}
	inst := s.lookup(name)
	if s.tokens == nil {
		if inst == nil {
			fail(http.StatusNotFound, "unknown_instance")
		} else {
			fail(http.StatusForbidden, "no_token")
		}
		return
	}
	var token vault.Secret
	if inst != nil {
		inst.mu.Lock()
		if !s.now().After(inst.pendingUntil) {
			token = inst.pending
		}
		inst.mu.Unlock()
	}
	stored := token == nil
	if stored {
		var err error
		if token, err = s.tokens.Token(ctx, name); err != nil {
			switch {
			case isNotExist(err):
			case inst != nil:
				s.log.ErrorContext(ctx, "cannot read enrollment token", "instance", name, "error", err)
			default: // any name reaches here, unauthenticated: not worth an error
				s.log.DebugContext(ctx, "cannot read enrollment token", "instance", name, "error", err)
			}
			if inst == nil {
				fail(http.StatusNotFound, "unknown_instance")
			} else {
				fail(http.StatusForbidden, "no_token")
			}
			return
		}
	}
	pub, err := req.Verify(name, token)
	if err != nil {
		fail(http.StatusForbidden, "bad_proof")
		return
	}
	// The token is good, so the operator bootstrapped this agent: wait
	// for the instance and its key rather than send it away to retry.
	inst, version, key, ok := s.keyFor(ctx, name)
	switch {
	case ctx.Err() != nil:
		return
	case inst == nil:
		fail(http.StatusNotFound, "unknown_instance")
		return
	case !ok:
		// Before the token is used up: the agent comes back once the
		// instance has its key.
		fail(http.StatusConflict, "no_key")
		return
	}
	if stored {
		// The token may have been used, or replaced by a new bootstrap,
		// while this request waited: only the one stored now counts.
		now, err := s.tokens.Token(ctx, name)
		if err != nil || subtle.ConstantTimeCompare(now.Bytes(), token.Bytes()) != 1 {
			fail(http.StatusForbidden, "no_token")
			return
		}
	}
	// One-time: the stored token is gone before the key leaves. A retry
	// after a lost reply uses the copy kept for the grace period.
	if err := s.tokens.Consume(ctx, name); err != nil {
		s.log.ErrorContext(ctx, "cannot consume the enrollment token", "instance", name, "error", err)
		refuse(w, http.StatusInternalServerError, "token_store_failed")
		return
	}
	inst.mu.Lock()
	inst.pending, inst.pendingUntil = token, s.now().Add(enrollGrace)
	inst.mu.Unlock()
	delivery, err := rpc.SealKeyFor(pub, name, token, version, key)
	if err != nil {
		s.log.ErrorContext(ctx, "cannot seal key for agent", "instance", name, "error", err)
		refuse(w, http.StatusInternalServerError, "seal_failed")
		return
	}
	s.enrollments.WithLabelValues("ok").Inc()
	s.log.InfoContext(ctx, "agent enrolled", "instance", name, "key_version", version)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(delivery)
}

// keyFor returns the instance and its current key, waiting up to
// enrollWait for it to be registered and keyed; ok is false (and inst nil
// if it was never registered) when the wait ran out or ctx ended.
func (s *Server) keyFor(ctx context.Context, name string) (inst *instance, version uint32, key vault.Secret, ok bool) {
	timer := time.NewTimer(s.enrollWait)
	defer timer.Stop()
	for {
		s.mu.RLock()
		inst, registered := s.instances[name], s.registered
		s.mu.RUnlock()
		var changed chan struct{} // nil, which never fires, until the instance is there
		if inst != nil {
			inst.mu.Lock()
			version = inst.session.Keys().Current()
			key, changed = inst.keys[version], inst.changed
			inst.mu.Unlock()
			if version != 0 {
				return inst, version, key, true
			}
		}
		select {
		case <-ctx.Done():
			return inst, 0, nil, false
		case <-timer.C:
			return inst, 0, nil, false
		case <-registered: // registered again, say, after an unregister
		case <-changed:
		}
	}
}
