package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/datastoretest"
	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/rpc"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/vault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is the reconciler's side in-process: the real transport.Server
// behind HTTPS, with the token directory the load issues into.
type server struct {
	*transport.Server
	url      string
	roots    *x509.CertPool
	tokenDir string
}

func newServer(t *testing.T, opts ...transport.ServerOption) *server {
	t.Helper()
	s := &server{tokenDir: filepath.Join(t.TempDir(), "tokens")}
	tokens, err := transport.NewTokenDir(s.tokenDir)
	if err != nil {
		t.Fatal(err)
	}
	s.Server = transport.NewServer(append([]transport.ServerOption{transport.WithTokens(tokens)}, opts...)...)
	https := httptest.NewUnstartedServer(s.Handler()) // HTTP/1.1, as the daemon serves it
	https.StartTLS()
	t.Cleanup(https.Close)
	s.url = https.URL
	s.roots = x509.NewCertPool()
	s.roots.AddCert(https.Certificate())
	return s
}

// register serves instance i with an RPC key of its own and, if d is
// set, publishes d for it.
func (s *server) register(t *testing.T, i int, d *agent.Desired) {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	if err := s.Register(instanceName(i), transport.Keys{Current: &transport.Key{Version: 1, Secret: vault.Secret(secret)}}); err != nil {
		t.Fatal(err)
	}
	if d != nil {
		if err := s.Publish(instanceName(i), *d); err != nil {
			t.Fatal(err)
		}
	}
}

// startLoad prepares and runs a load against s until the test ends.
func startLoad(t *testing.T, s *server, cfg Config) *Load {
	t.Helper()
	cfg.URL, cfg.RootCAs, cfg.TokenDir, cfg.WorkDir = s.url, s.roots, s.tokenDir, t.TempDir()
	l, err := NewLoad(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Prepare(t.Context()); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return l
}

// waitFor polls cond until it holds or ten seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAgentsEnrollApplyAndHeartbeat(t *testing.T) {
	ca := datastoretest.NewCA(t)
	cert := ca.Issue(t, instanceName(0))
	bundle := &installers.Bundle{CertPEM: cert.CertPEM, ChainPEM: cert.ChainPEM, Key: cert.Key,
		Serial: cert.Serial, Fingerprint: cert.Fingerprint, MinVersion: "1.2"}
	const agents, heartbeat = 20, 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		shared bool
		ssl    bool
	}{
		{"own transport per agent, ssl on", false, true},
		{"shared transport, ssl off", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			desired := &agent.Desired{Generation: 1, SSL: tc.ssl}
			if tc.ssl {
				desired.Bundle = bundle
			}
			for i := range agents {
				s.register(t, i, desired)
			}
			l := startLoad(t, s, Config{Agents: agents, Heartbeat: heartbeat, Ramp: 100 * time.Millisecond, SharedTransport: tc.shared})

			waitFor(t, "every agent to apply and be held twice", func() bool {
				st := l.Snapshot()
				return st.Applied == agents && st.HeldPolls >= 2*agents
			})
			for i := range agents {
				obs, ok := s.Observed(instanceName(i))
				want := agent.Status{Instance: instanceName(i), Phase: agent.Active, Generation: 1, KeyVersion: 1}
				if tc.ssl {
					want.SSL, want.Verified, want.Serial, want.Fingerprint, want.NotAfter = true, true, cert.Serial, cert.Fingerprint, cert.NotAfter.UTC()
				}
				if !ok || !obs.Sealed {
					t.Fatalf("%s: observed %v, sealed %v; want a sealed status", instanceName(i), ok, obs.Sealed)
				}
				if diff := cmp.Diff(want, obs.Status, cmpopts.IgnoreFields(agent.Status{}, "ReportedAt"), cmpopts.EquateApproxTime(time.Second)); diff != "" {
					t.Errorf("%s: status the server heard (-want +got):\n%s", instanceName(i), diff)
				}
			}
			st := l.Snapshot()
			if st.Enrolled != agents || st.Started != agents || st.ChangedPolls != agents || st.Errors != 0 {
				t.Errorf("snapshot %+v: want %d started, enrolled and changed polls, no errors", st, agents)
			}
			// A held poll lasts the heartbeat: the server held it that
			// long, not less, and answered promptly after.
			if mean := st.HeldSeconds / float64(st.HeldPolls); mean < heartbeat.Seconds() || mean > heartbeat.Seconds()+0.15 {
				t.Errorf("mean held poll %.3fs, want the heartbeat %s", mean, heartbeat)
			}
			if st.HeldMinSeconds < heartbeat.Seconds() {
				t.Errorf("shortest held poll %.3fs, below the heartbeat %s", st.HeldMinSeconds, heartbeat)
			}
		})
	}
}

// An agent whose instance the reconciler does not serve yet is refused
// and retries with backoff, as a real one does, until it enrolls.
func TestAgentRetriesUntilItsInstanceIsServed(t *testing.T) {
	// Enrollments not held (the daemon holds one up to 20 s for its
	// instance): the unserved agent is refused, and retries, as it does
	// when the wait runs out.
	s := newServer(t, transport.WithEnrollWait(0))
	s.register(t, 0, &agent.Desired{Generation: 1})
	l := startLoad(t, s, Config{Agents: 2, Heartbeat: 200 * time.Millisecond})
	waitFor(t, "the unserved agent to be refused", func() bool { return l.Snapshot().Errors > 0 })
	s.register(t, 1, &agent.Desired{Generation: 1})
	waitFor(t, "both agents to apply", func() bool { return l.Snapshot().Applied == 2 })
	st := l.Snapshot()
	if diff := cmp.Diff(map[string]int64{"enroll:unknown_instance": st.Errors}, st.ErrorsByReason); diff != "" {
		t.Errorf("errors by reason (-want +got):\n%s", diff)
	}
}

func TestAppliedReportsWhatAnAgentWould(t *testing.T) {
	ca := datastoretest.NewCA(t)
	cert := ca.Issue(t, "db")
	prev := agent.Status{Instance: "db", Phase: agent.Pending, KeyVersion: 3}
	for _, tc := range []struct {
		name    string
		desired agent.Desired
		want    agent.Status
	}{
		{"ssl off: Active without a certificate", agent.Desired{Generation: 2},
			agent.Status{Instance: "db", Phase: agent.Active, Generation: 2, KeyVersion: 3}},
		{"ssl on: the issued certificate verified", agent.Desired{Generation: 4, SSL: true,
			Bundle: &installers.Bundle{CertPEM: cert.CertPEM, Serial: cert.Serial, Fingerprint: cert.Fingerprint}},
			agent.Status{Instance: "db", Phase: agent.Active, Generation: 4, KeyVersion: 3, SSL: true, Verified: true,
				Serial: cert.Serial, Fingerprint: cert.Fingerprint, NotAfter: cert.NotAfter.UTC().Truncate(time.Second)}},
		{"ssl on without a bundle: Error, as the agent reports it", agent.Desired{Generation: 5, SSL: true, Withheld: "no key"},
			agent.Status{Instance: "db", Phase: agent.Error, Generation: 5, KeyVersion: 3,
				Message: "desired state asks for SSL but carries no certificate: no key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := applied("db", &tc.desired, prev)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApproxTime(time.Second)); diff != "" {
				t.Errorf("applied (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&transport.RefusedError{Op: "poll", Code: 403, Reason: rpc.ResultReplay}, "poll:replay"},
		{fmt.Errorf("wrapped: %w", &transport.RefusedError{Op: "enroll", Code: 409, Reason: "no_key"}), "enroll:no_key"},
		{errors.New("connection refused"), "transport"},
	} {
		if got := errorReason(tc.err); got != tc.want {
			t.Errorf("errorReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
