package agent

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/statedir"
	"github.com/reconciler-dev/reconciler/vault"
)

// Desired is what the reconciler wants on the host, numbered by
// generation: a higher generation replaces a lower one.
type Desired struct {
	Generation uint64
	SSL        bool
	Bundle     *installers.Bundle // set when SSL is true
	// Withheld says why the reconciler sent no bundle for SSL (for
	// example: the agent has no RPC key, and private keys travel sealed
	// only).
	Withheld string
}

// Transport carries the agent's messages to the reconciler, sealed with
// the instance's key.
//
// Poll reports s (which doubles as the heartbeat) and waits, up to the
// long-poll timeout, for desired state of a generation above
// s.Generation. It returns nil and no error when nothing newer came in
// time, and an error when the reconciler could not be reached or the
// answer could not be opened. It returns promptly when ctx is done.
type Transport interface {
	Poll(ctx context.Context, s Status) (*Desired, error)
}

// Verifier proves from the client side that the datastore serves the
// certificate with the given SHA-256 fingerprint, chaining to chainPEM,
// in the datastore's own protocol (a real handshake, not a file check).
type Verifier interface {
	Verify(ctx context.Context, chainPEM []byte, fingerprint string) error
}

// Option configures an Agent.
type Option func(*Agent)

// WithLogger sets the logger (nil, the default, discards).
func WithLogger(l *slog.Logger) Option { return func(a *Agent) { a.log = l } }

// WithRegisterer registers the agent's metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(a *Agent) { a.reg = r } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(a *Agent) { a.now = now } }

// Agent applies desired state to one instance. Run drives it.
type Agent struct {
	cfg       *Config
	transport Transport
	installer installers.Installer
	verifier  Verifier
	log       *slog.Logger
	reg       prometheus.Registerer
	now       func() time.Time
	dir       *statedir.Dir
	metrics   *metrics
}

// New returns an agent for cfg's instance.
func New(cfg *Config, t Transport, inst installers.Installer, v Verifier, opts ...Option) *Agent {
	a := &Agent{cfg: cfg, transport: t, installer: inst, verifier: v, now: time.Now}
	for _, o := range opts {
		o(a)
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	a.metrics = newMetrics(a.reg)
	return a
}

// Run polls and applies until ctx is done; it returns nil then. It
// survives the reconciler being away (backoff, the last applied state
// kept) and its own restart (the state directory says where it was).
func (a *Agent) Run(ctx context.Context) error {
	dir, err := statedir.Open(a.cfg.StateDir)
	if err != nil {
		return err
	}
	a.dir = dir
	status, err := loadStatus(dir)
	if err != nil {
		return err
	}
	status.Instance = a.cfg.Instance
	a.metrics.observe(status)
	failures := 0
	for {
		if status.Phase == RestartRequired {
			status = a.recheck(ctx, status)
		}
		status.ReportedAt = a.now()
		desired, err := a.transport.Poll(ctx, status)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			a.metrics.polls.WithLabelValues("error").Inc()
			failures++
			wait := backoff(failures)
			a.log.WarnContext(ctx, "cannot reach the reconciler; keeping the last applied state", "error", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		failures = 0
		if desired == nil || desired.Generation <= status.Generation {
			a.metrics.polls.WithLabelValues("unchanged").Inc()
			continue
		}
		a.metrics.polls.WithLabelValues("changed").Inc()
		status = a.apply(ctx, desired, status)
		a.metrics.observe(status)
		if err := saveStatus(a.dir, status); err != nil {
			return err // without its state the agent could apply twice: stop loudly
		}
	}
}

// apply takes the instance to desired and returns the status to report.
func (a *Agent) apply(ctx context.Context, d *Desired, prev Status) Status {
	s := Status{Instance: a.cfg.Instance, Generation: d.Generation, KeyVersion: prev.KeyVersion}
	a.log.InfoContext(ctx, "applying desired state", "generation", d.Generation, "ssl", d.SSL)
	defer func() { a.metrics.applies.WithLabelValues(string(s.Phase)).Inc() }()
	if !d.SSL {
		res, err := a.installer.Remove(ctx)
		if err != nil {
			s.Phase, s.Message = Error, fmt.Sprintf("remove TLS configuration: %v", err)
			s.SSL, s.Serial, s.Fingerprint, s.NotAfter = prev.SSL, prev.Serial, prev.Fingerprint, prev.NotAfter
			return s
		}
		s.Phase, s.Message = phaseOf(res.Outcome, Active), res.Message
		return s
	}
	if d.Bundle == nil {
		s.Phase, s.Message = Error, "desired state asks for SSL but carries no certificate"
		if d.Withheld != "" {
			s.Message = "desired state asks for SSL but the reconciler withheld the certificate: " + d.Withheld
		}
		s.SSL, s.Serial, s.Fingerprint, s.NotAfter = prev.SSL, prev.Serial, prev.Fingerprint, prev.NotAfter
		return s
	}
	b := *d.Bundle
	res, err := a.installer.Install(ctx, b)
	if err != nil {
		s.Phase, s.Message = Error, fmt.Sprintf("install TLS: %v", err)
		s.SSL, s.Serial, s.Fingerprint, s.NotAfter = prev.SSL, prev.Serial, prev.Fingerprint, prev.NotAfter
		return s
	}
	s.SSL, s.Serial, s.Fingerprint = true, b.Serial, b.Fingerprint
	if leaf, err := vault.ParseLeaf(b.CertPEM); err == nil {
		s.NotAfter = leaf.NotAfter.UTC()
	}
	s.Message = res.Message
	if res.Outcome == installers.RestartRequired {
		s.Phase = RestartRequired
		if err := saveChain(a.dir, b.ChainPEM); err != nil {
			a.log.ErrorContext(ctx, "cannot save the CA chain for the post-restart check", "error", err)
		}
		return s
	}
	if err := saveChain(a.dir, b.ChainPEM); err != nil {
		s.Phase, s.Message = Error, err.Error()
		return s
	}
	if err := a.verifier.Verify(ctx, b.ChainPEM, b.Fingerprint); err != nil {
		s.Phase, s.Message = Error, fmt.Sprintf("TLS installed but not served: %v", err)
		return s
	}
	s.Phase, s.Verified = Active, true
	return s
}

// recheck verifies an instance waiting for a restart: once the operator
// has restarted the datastore it serves the certificate, and the instance
// is Active.
func (a *Agent) recheck(ctx context.Context, s Status) Status {
	if !s.SSL {
		return s
	}
	chain, err := loadChain(a.dir)
	if err != nil {
		return s
	}
	if err := a.verifier.Verify(ctx, chain, s.Fingerprint); err != nil {
		return s
	}
	s.Phase, s.Verified, s.Message = Active, true, "the datastore was restarted and serves the certificate"
	a.metrics.observe(s)
	if err := saveStatus(a.dir, s); err != nil {
		a.log.ErrorContext(ctx, "cannot save agent state", "error", err)
	}
	return s
}

func phaseOf(o installers.Outcome, done Phase) Phase {
	if o == installers.RestartRequired {
		return RestartRequired
	}
	return done
}

// backoff is the wait after n consecutive failures: exponential from 1s
// to a minute, with full jitter so a fleet of agents does not return in
// step after an outage.
func backoff(n int) time.Duration {
	bound := time.Second << min(n-1, 6)
	if bound > time.Minute {
		bound = time.Minute
	}
	return time.Duration(rand.Int64N(int64(bound))) + 100*time.Millisecond
}
