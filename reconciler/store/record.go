package store

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// MaxHistory is how many applied revisions a record keeps.
const MaxHistory = 10

// Record is what the reconciler remembers of one instance.
type Record struct {
	// Name is the instance's name, the key of the record.
	Name string
	// AppliedRevision is the git commit hash last applied, and AppliedAt
	// when.
	AppliedRevision string
	AppliedAt       time.Time
	// AppliedSpec is the instance document last applied, encoded by the
	// daemon (the store does not read it): what a restarted daemon plans
	// from.
	AppliedSpec []byte
	// Generation is the desired-state generation last published to the
	// agent (or reserved for it: see InFlight).
	Generation uint64
	// InFlight is the generation published and not yet confirmed by the
	// agent, nil when there is none: what a restarted reconciler, or the
	// replica that takes over, needs to confirm it without issuing again.
	InFlight *InFlight
	// Keys are the instance's wrapped RPC keys, sorted by version: at most
	// one KeyCurrent and one KeyNext.
	Keys []WrappedKey
	// Certificate is the instance's certificate, nil before the first.
	Certificate *Certificate
	// PreviousSerial names a certificate to revoke once Certificate is
	// installed; empty when there is none.
	PreviousSerial string
	// Status is the agent's last report.
	Status AgentStatus
	// Watermarks are the RPC counters of the control channel.
	Watermarks Watermarks
	// History holds the last MaxHistory applied revisions, newest first.
	// Update keeps the first MaxHistory entries and drops the rest; use
	// AddHistory to put a new one in front.
	History []Applied
	// UpdatedAt is when the record was last written. Update sets it.
	UpdatedAt time.Time
}

// KeyState says what a wrapped key is for.
type KeyState string

const (
	// KeyCurrent is the key the control channel uses.
	KeyCurrent KeyState = "current"
	// KeyNext is a rotation waiting for the agent's acknowledgement; then
	// it becomes current (PromoteNext).
	KeyNext KeyState = "next"
)

// WrappedKey is one per-instance RPC key as the key provider wrapped it.
//
// Wrapped keys are not secrets (only the key provider can unwrap them), but
// they are kept out of logs anyway: String, Format and LogValue print the
// version, state and master version only, and JSON leaves Wrapped out.
type WrappedKey struct {
	// Version is the key's version in the RPC header, from 1.
	Version uint32
	// Wrapped is the key encrypted under the provider's master key.
	Wrapped []byte `json:"-"`
	// MasterVersion is the master key version that wrapped it.
	MasterVersion int
	State         KeyState
}

// String shows the version, state and master version, never the wrapped
// bytes.
func (k WrappedKey) String() string {
	return fmt.Sprintf("store.WrappedKey{version: %d, state: %s, masterVersion: %d}", k.Version, k.State, k.MasterVersion)
}

// Format keeps every fmt verb, %#v and %x included, on String.
func (k WrappedKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// LogValue shows the version, state and master version to slog.
func (k WrappedKey) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("version", k.Version),
		slog.String("state", string(k.State)),
		slog.Int("master_version", k.MasterVersion),
	)
}

// CertState says where a certificate is in its life.
type CertState string

const (
	// CertIssued is a certificate the CA issued and the store committed
	// before it was delivered: if the reconciler dies now, it knows the
	// serial to install or revoke.
	CertIssued CertState = "issued"
	// CertInstalled is a certificate the agent reported serving.
	CertInstalled CertState = "installed"
	// CertRevoked is a certificate revoked at the CA (SSL disabled).
	CertRevoked CertState = "revoked"
)

// Certificate describes an instance's certificate; the PEM itself lives
// with the agent.
type Certificate struct {
	// Serial is in the key provider's notation (vault.SerialString).
	Serial string
	// Fingerprint is the hex SHA-256 of the DER certificate.
	Fingerprint string
	NotBefore   time.Time
	NotAfter    time.Time
	State       CertState
}

// AgentStatus mirrors what an instance's agent last reported.
//
// The JSON names are the SQLite store's column format: renaming one is a
// migration.
type AgentStatus struct {
	Phase string `json:"phase,omitempty"`
	// Generation is the desired-state generation the agent applied.
	Generation uint64 `json:"generation,omitempty"`
	// SSL says whether TLS is configured; Verified whether a handshake saw
	// the issued certificate served.
	SSL      bool `json:"ssl,omitempty"`
	Verified bool `json:"verified,omitempty"`
	// Serial, Fingerprint and NotAfter name the certificate installed.
	Serial      string    `json:"serial,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	NotAfter    time.Time `json:"notAfter,omitzero"`
	// KeyVersion is the RPC key version the agent seals with.
	KeyVersion uint32 `json:"keyVersion,omitempty"`
	// Message is for people: what happened, or what to do.
	Message string `json:"message,omitempty"`
	// ReportedAt is when the agent sent the report.
	ReportedAt time.Time `json:"reportedAt,omitzero"`
}

// Watermarks are the highest RPC message counters of an instance's control
// channel, so that a restarted reconciler neither reuses a counter nor
// accepts a replayed one.
type Watermarks struct {
	// Sent is the last counter the reconciler sealed with; Received the
	// last it accepted from the agent.
	Sent, Received uint64
}

// InFlight is a generation on its way to the agent.
//
// The JSON names are the stores' column format: renaming one is a
// migration.
type InFlight struct {
	Generation uint64 `json:"generation"`
	// Revision is the commit it applies; Spec the instance document as the
	// daemon encoded it (nil for a prune).
	Revision string `json:"revision,omitempty"`
	Spec     []byte `json:"spec,omitempty"`
	// SSL says whether it carries a certificate (Record.Certificate).
	SSL         bool      `json:"ssl,omitempty"`
	PublishedAt time.Time `json:"publishedAt,omitzero"`
}

// Applied is one applied revision.
type Applied struct {
	Revision   string
	Generation uint64
	At         time.Time
}

// Clone returns a deep copy of r: its keys (wrapped bytes included),
// certificate and history are its own. Clone of nil is nil.
func (r *Record) Clone() *Record {
	if r == nil {
		return nil
	}
	c := *r
	if r.Keys != nil {
		c.Keys = make([]WrappedKey, len(r.Keys))
		for i, k := range r.Keys {
			k.Wrapped = bytes.Clone(k.Wrapped)
			c.Keys[i] = k
		}
	}
	if r.Certificate != nil {
		cert := *r.Certificate
		c.Certificate = &cert
	}
	if r.InFlight != nil {
		f := *r.InFlight
		f.Spec = bytes.Clone(f.Spec)
		c.InFlight = &f
	}
	c.History = slices.Clone(r.History)
	c.AppliedSpec = bytes.Clone(r.AppliedSpec)
	return &c
}

// Key returns a copy of the key in state s, if there is one.
func (r *Record) Key(s KeyState) (WrappedKey, bool) {
	for _, k := range r.Keys {
		if k.State == s {
			k.Wrapped = bytes.Clone(k.Wrapped)
			return k, true
		}
	}
	return WrappedKey{}, false
}

// PromoteNext makes the next key current and drops the old current one, as
// when the agent acknowledges a rotation. It reports false, and changes
// nothing, when there is no next key.
func (r *Record) PromoteNext() bool {
	if _, ok := r.Key(KeyNext); !ok {
		return false
	}
	r.Keys = slices.DeleteFunc(r.Keys, func(k WrappedKey) bool { return k.State == KeyCurrent })
	for i := range r.Keys {
		if r.Keys[i].State == KeyNext {
			r.Keys[i].State = KeyCurrent
		}
	}
	return true
}

// AddHistory puts a in front of History and drops what falls beyond
// MaxHistory.
func (r *Record) AddHistory(a Applied) {
	r.History = slices.Insert(r.History, 0, a)
	if len(r.History) > MaxHistory {
		r.History = slices.Clip(r.History[:MaxHistory])
	}
}

// LogValue shows the instance's state to slog, keys by version and state
// only.
func (r *Record) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("name", r.Name),
		slog.String("applied_revision", r.AppliedRevision),
		slog.Any("generation", r.Generation),
	}
	if len(r.Keys) > 0 {
		keys := make([]string, len(r.Keys))
		for i, k := range r.Keys {
			keys[i] = fmt.Sprintf("%d:%s", k.Version, k.State)
		}
		attrs = append(attrs, slog.String("keys", strings.Join(keys, ",")))
	}
	if c := r.Certificate; c != nil {
		attrs = append(attrs, slog.String("serial", c.Serial), slog.String("cert_state", string(c.State)))
	}
	return slog.GroupValue(attrs...)
}

// Prepare checks and tidies a record that an Update's fn returned, before
// the store writes it: every implementation calls it, so they all keep
// records the same way. It refuses (wrapping ErrInvalid) a record whose
// Name is not name, a key of an unknown state, version 0 or no wrapped
// bytes, two keys of one state or one version, and a certificate with no
// serial or an unknown state, and a generation in flight that is 0 or
// above Generation. It then sorts Keys by version, trims History
// to MaxHistory, turns empty slices into nil, keeps times in UTC to the
// microsecond (what every database stores alike) and sets UpdatedAt to
// now.
func Prepare(r *Record, name string, now time.Time) error {
	if name == "" {
		return fmt.Errorf("check record: empty instance name: %w", ErrInvalid)
	}
	if r.Name != name {
		return fmt.Errorf("check record %q: renamed to %q: %w", name, r.Name, ErrInvalid)
	}
	states := map[KeyState]bool{}
	versions := map[uint32]bool{}
	for _, k := range r.Keys {
		switch {
		case k.State != KeyCurrent && k.State != KeyNext:
			return fmt.Errorf("check record %q: key version %d has unknown state %q: %w", name, k.Version, k.State, ErrInvalid)
		case k.Version == 0:
			return fmt.Errorf("check record %q: %s key has version 0: %w", name, k.State, ErrInvalid)
		case len(k.Wrapped) == 0:
			return fmt.Errorf("check record %q: key version %d has no wrapped bytes: %w", name, k.Version, ErrInvalid)
		case states[k.State]:
			return fmt.Errorf("check record %q: two %s keys: %w", name, k.State, ErrInvalid)
		case versions[k.Version]:
			return fmt.Errorf("check record %q: two keys of version %d: %w", name, k.Version, ErrInvalid)
		}
		states[k.State], versions[k.Version] = true, true
	}
	if c := r.Certificate; c != nil {
		if c.Serial == "" {
			return fmt.Errorf("check record %q: certificate without a serial: %w", name, ErrInvalid)
		}
		if c.State != CertIssued && c.State != CertInstalled && c.State != CertRevoked {
			return fmt.Errorf("check record %q: certificate %s has unknown state %q: %w", name, c.Serial, c.State, ErrInvalid)
		}
		c.NotBefore, c.NotAfter = storedTime(c.NotBefore), storedTime(c.NotAfter)
	}

	if f := r.InFlight; f != nil {
		if f.Generation == 0 || f.Generation > r.Generation {
			return fmt.Errorf("check record %q: generation %d in flight, %d published: %w", name, f.Generation, r.Generation, ErrInvalid)
		}
		if len(f.Spec) == 0 {
			f.Spec = nil
		}
		f.PublishedAt = storedTime(f.PublishedAt)
	}

	slices.SortFunc(r.Keys, func(a, b WrappedKey) int { return cmp.Compare(a.Version, b.Version) })
	if len(r.Keys) == 0 {
		r.Keys = nil
	}
	if len(r.AppliedSpec) == 0 {
		r.AppliedSpec = nil
	}
	if len(r.History) > MaxHistory {
		r.History = slices.Clip(r.History[:MaxHistory])
	}
	if len(r.History) == 0 {
		r.History = nil
	}
	for i := range r.History {
		r.History[i].At = storedTime(r.History[i].At)
	}
	r.AppliedAt = storedTime(r.AppliedAt)
	r.Status.NotAfter = storedTime(r.Status.NotAfter)
	r.Status.ReportedAt = storedTime(r.Status.ReportedAt)
	r.UpdatedAt = storedTime(now)
	return nil
}

// storedTime is t as a store keeps it: UTC, to the microsecond, without a
// monotonic reading.
func storedTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
