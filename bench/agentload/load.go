package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/vault"
)

// Config is a load of agents against one reconciler.
type Config struct {
	// Agents is how many agents run, for the instances named
	// instanceName(0) to instanceName(Agents-1).
	Agents int
	// URL is the reconciler's agent endpoint, https://host:port, and
	// RootCAs the CA that verifies it (the daemon's reconciler-ca.pem).
	URL     string
	RootCAs *x509.CertPool
	// TokenDir is the reconciler's enrollment token directory: Prepare
	// issues each agent's one-time token into it, as `reconciler agent
	// bootstrap` does.
	TokenDir string
	// WorkDir holds one directory per agent: its state directory (RPC
	// keys, message counters) and its token file.
	WorkDir string
	// Heartbeat is how long the reconciler may hold a poll: the agents'
	// heartbeat interval (agent.Config.Heartbeat; transport.DefaultWait
	// if zero).
	Heartbeat time.Duration
	// Ramp spreads the agents' start evenly over this long, so that
	// their heartbeats do not all fall in the same second, as in a fleet
	// whose hosts started at different times.
	Ramp time.Duration
	// SharedTransport makes every agent use one http.Transport, HTTP/1.1
	// with an idle connection per agent. By default each agent has the
	// transport transport.NewClient builds, as a real agent does: its own
	// TLS connection, HTTP/2.
	SharedTransport bool
}

// Load runs Config.Agents agents, each a goroutine with its own
// transport.Client playing the agent loop (agent.Agent.Run) without a
// datastore: poll with the status, take the desired state, report it
// applied, poll again.
type Load struct {
	cfg    Config
	log    *slog.Logger
	http   *http.Client // shared by every agent; nil: each has its own
	counts counters
}

// NewLoad returns a load for cfg; a nil log discards.
func NewLoad(cfg Config, log *slog.Logger) (*Load, error) {
	if cfg.Agents < 1 {
		return nil, fmt.Errorf("new agent load: %d agents", cfg.Agents)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = transport.DefaultWait
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Load{cfg: cfg, log: log}
	l.counts.agents = cfg.Agents
	if cfg.SharedTransport {
		l.http = &http.Client{Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1: a connection per poll in flight
			MaxIdleConns:        cfg.Agents + 16,
			MaxIdleConnsPerHost: cfg.Agents + 16,
			IdleConnTimeout:     2 * transport.MaxWait,
			TLSHandshakeTimeout: 10 * time.Second,
		}}
	}
	return l, nil
}

// agentDirs returns the i-th agent's state directory and token file.
func (l *Load) agentDirs(i int) (state, token string) {
	dir := filepath.Join(l.cfg.WorkDir, instanceName(i))
	return filepath.Join(dir, "state"), filepath.Join(dir, "enrollment-token")
}

// Prepare gives every agent that has no key yet a fresh one-time token:
// the reconciler's copy in TokenDir, the agent's in its token file,
// which is what `reconciler agent bootstrap` writes on both sides.
func (l *Load) Prepare(ctx context.Context) error {
	tokens, err := transport.NewTokenDir(l.cfg.TokenDir)
	if err != nil {
		return fmt.Errorf("prepare agents: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16) // the writes are fsynced: overlap them
	for i := range l.cfg.Agents {
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			state, tokenFile := l.agentDirs(i)
			if err := os.MkdirAll(state, 0o700); err != nil {
				return fmt.Errorf("prepare agent %s: %w", instanceName(i), err)
			}
			token, err := tokens.Issue(instanceName(i))
			if err != nil {
				return fmt.Errorf("prepare agent %s: %w", instanceName(i), err)
			}
			if err := os.WriteFile(tokenFile, transport.FormatToken(token), 0o600); err != nil {
				return fmt.Errorf("prepare agent %s: %w", instanceName(i), err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Run starts the agents, spread over Ramp, and runs them until ctx ends;
// it returns nil then, once every agent has stopped. It returns an error
// only when an agent cannot be set up at all.
func (l *Load) Run(ctx context.Context) error {
	clients := make([]*transport.Client, l.cfg.Agents)
	for i := range clients {
		state, token := l.agentDirs(i)
		var opts []transport.ClientOption
		if l.http != nil {
			opts = append(opts, transport.WithHTTPClient(l.http))
		}
		c, err := transport.NewClient(transport.ClientConfig{
			Instance: instanceName(i), URL: l.cfg.URL, RootCAs: l.cfg.RootCAs,
			StateDir: state, TokenFile: token, Wait: l.cfg.Heartbeat,
		}, opts...)
		if err != nil {
			return fmt.Errorf("start agent %s: %w", instanceName(i), err)
		}
		clients[i] = c
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	began := time.Now()
	start := time.NewTimer(time.Hour)
	defer start.Stop()
	for i, c := range clients {
		at := began.Add(time.Duration(int64(l.cfg.Ramp) * int64(i) / int64(len(clients))))
		if wait := time.Until(at); wait > 0 {
			start.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-start.C:
			}
		}
		wg.Add(1)
		l.counts.started.Add(1)
		go func() {
			defer wg.Done()
			l.runAgent(ctx, instanceName(i), c)
		}()
	}
	<-ctx.Done()
	return nil
}

// runAgent is agent.Agent.Run without a datastore: poll with the status
// (the heartbeat), and when desired state of a newer generation comes,
// report it applied (Active; for SSL, the issued certificate verified,
// named by its serial and fingerprint), with the agent's backoff after a
// failed poll.
func (l *Load) runAgent(ctx context.Context, name string, c *transport.Client) {
	status := agent.Status{Instance: name, Phase: agent.Pending}
	enrolled := false
	failures := 0
	for {
		status.ReportedAt = time.Now()
		began := time.Now()
		l.counts.inFlight.Add(1)
		desired, err := c.Poll(ctx, status)
		l.counts.inFlight.Add(-1)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			l.counts.failed(err)
			failures++
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff(failures)):
			}
			continue
		}
		failures = 0
		if !enrolled && c.KeyVersion() > 0 {
			enrolled = true
			l.counts.enrolled.Add(1)
		}
		if desired == nil || desired.Generation <= status.Generation {
			l.counts.held(time.Since(began))
			continue
		}
		l.counts.changed.Add(1)
		wasApplied := status.Generation > 0 && status.Phase == agent.Active
		status = applied(name, desired, status)
		if !wasApplied && status.Phase == agent.Active {
			l.counts.applied.Add(1)
		}
	}
}

// applied is the status an agent reports after applying d, without
// touching a datastore: what agent.Agent.apply reports when the
// installer and the TLS check succeed.
func applied(name string, d *agent.Desired, prev agent.Status) agent.Status {
	s := agent.Status{Instance: name, Phase: agent.Active, Generation: d.Generation, KeyVersion: prev.KeyVersion}
	if !d.SSL {
		return s
	}
	if d.Bundle == nil {
		s.Phase, s.Message = agent.Error, "desired state asks for SSL but carries no certificate: "+d.Withheld
		return s
	}
	s.SSL, s.Verified, s.Serial, s.Fingerprint = true, true, d.Bundle.Serial, d.Bundle.Fingerprint
	if leaf, err := vault.ParseLeaf(d.Bundle.CertPEM); err == nil {
		s.NotAfter = leaf.NotAfter.UTC()
	}
	return s
}

// backoff is the real agent's wait after n consecutive failures:
// exponential from 1s to a minute, with full jitter.
func backoff(n int) time.Duration {
	bound := min(time.Second<<min(n-1, 6), time.Minute)
	return time.Duration(rand.Int64N(int64(bound))) + 100*time.Millisecond
}

// errorReason is the label a failed poll is counted under: the
// reconciler's refusal reason, or "transport" for anything else
// (connection refused, timeout, a reply that did not open).
func errorReason(err error) string {
	var refused *transport.RefusedError
	if errors.As(err, &refused) {
		return refused.Op + ":" + refused.Reason
	}
	return "transport"
}
