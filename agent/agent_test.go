package agent

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/reconciler-dev/reconciler/agent/installers"
)

// reconcilerScript stands in for the reconciler (its daemon is the next
// milestone): it answers polls from a script and records the statuses it
// was sent. A poll past the end of the script ends the test run.
type reconcilerScript struct {
	t       *testing.T
	answers []answer
	cancel  context.CancelFunc

	mu       sync.Mutex
	statuses []Status
}

type answer struct {
	desired *Desired
	err     error
}

func (r *reconcilerScript) Poll(ctx context.Context, s Status) (*Desired, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, s)
	if len(r.answers) == 0 {
		r.cancel()
		return nil, ctx.Err()
	}
	a := r.answers[0]
	r.answers = r.answers[1:]
	return a.desired, a.err
}

// recorder is an installer and verifier that records what it was asked.
type recorder struct {
	outcome    installers.Outcome
	installErr error
	verifyErr  []error // one per Verify call; nil when exhausted
	calls      []string
}

func (r *recorder) Install(_ context.Context, b installers.Bundle) (*installers.Result, error) {
	r.calls = append(r.calls, "install "+b.Serial)
	if r.installErr != nil {
		return nil, r.installErr
	}
	return &installers.Result{Outcome: r.outcome, Message: string(r.outcome)}, nil
}

func (r *recorder) Remove(context.Context) (*installers.Result, error) {
	r.calls = append(r.calls, "remove")
	return &installers.Result{Outcome: installers.Reloaded}, nil
}

func (r *recorder) Verify(_ context.Context, chain []byte, fingerprint string) error {
	r.calls = append(r.calls, "verify "+fingerprint+" "+string(chain))
	if len(r.verifyErr) == 0 {
		return nil
	}
	err := r.verifyErr[0]
	r.verifyErr = r.verifyErr[1:]
	return err
}

func bundle(serial string) *installers.Bundle {
	return &installers.Bundle{CertPEM: []byte("cert"), ChainPEM: []byte("chain"), Key: []byte("key"), Serial: serial, Fingerprint: "fp-" + serial}
}

func run(t *testing.T, dir string, rec *recorder, answers ...answer) []Status {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	script := &reconcilerScript{t: t, answers: answers, cancel: cancel}
	cfg := &Config{Instance: "orders-db", StateDir: dir}
	clock := func() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }
	if err := New(cfg, script, rec, rec, WithClock(clock)).Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return script.statuses
}

var ignoreTime = cmpopts.IgnoreFields(Status{}, "ReportedAt", "Message")

func TestAgentAppliesEachGenerationOnce(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	rec := &recorder{outcome: installers.Reloaded}
	statuses := run(t, dir, rec,
		answer{desired: &Desired{Generation: 1, SSL: true, Bundle: bundle("01")}},
		answer{desired: &Desired{Generation: 1, SSL: true, Bundle: bundle("01")}}, // the same again
		answer{},
	)
	want := []Status{
		{Instance: "orders-db", Phase: Pending},
		{Instance: "orders-db", Phase: Active, Generation: 1, SSL: true, Verified: true, Serial: "01", Fingerprint: "fp-01"},
		{Instance: "orders-db", Phase: Active, Generation: 1, SSL: true, Verified: true, Serial: "01", Fingerprint: "fp-01"},
		{Instance: "orders-db", Phase: Active, Generation: 1, SSL: true, Verified: true, Serial: "01", Fingerprint: "fp-01"},
	}
	if diff := cmp.Diff(want, statuses, ignoreTime); diff != "" {
		t.Errorf("reported statuses (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"install 01", "verify fp-01 chain"}, rec.calls); diff != "" {
		t.Errorf("installer calls (-want +got):\n%s", diff)
	}

	// A restarted agent resumes at generation 1 and does not apply it again.
	rec2 := &recorder{outcome: installers.Reloaded}
	statuses = run(t, dir, rec2, answer{desired: &Desired{Generation: 1, SSL: true, Bundle: bundle("01")}})
	if statuses[0].Generation != 1 || statuses[0].Phase != Active || len(rec2.calls) != 0 {
		t.Errorf("after a restart: first status %+v, calls %v; want generation 1 Active and nothing applied", statuses[0], rec2.calls)
	}
}

func TestAgentRestartRequiredUntilTheDatastoreServesTheCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	still := errors.New("still the old certificate")
	rec := &recorder{outcome: installers.RestartRequired, verifyErr: []error{still, still}}
	statuses := run(t, dir, rec,
		answer{desired: &Desired{Generation: 3, SSL: true, Bundle: bundle("02")}},
		answer{}, // heartbeats while waiting: two re-checks fail,
		answer{}, // then the operator restarts the datastore
		answer{}, // and the third re-check sees the certificate
	)
	var phases []Phase
	for _, s := range statuses {
		phases = append(phases, s.Phase)
	}
	if diff := cmp.Diff([]Phase{Pending, RestartRequired, RestartRequired, Active, Active}, phases); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	if last := statuses[len(statuses)-1]; !last.Verified || last.Serial != "02" {
		t.Errorf("last status %+v, want verified serial 02", last)
	}
}

func TestAgentReportsInstallErrorsAndKeepsTheOldCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	ok := &recorder{outcome: installers.Reloaded}
	run(t, dir, ok, answer{desired: &Desired{Generation: 1, SSL: true, Bundle: bundle("01")}})
	bad := &recorder{installErr: errors.New("postgresql: could not load private key file")}
	statuses := run(t, dir, bad, answer{desired: &Desired{Generation: 2, SSL: true, Bundle: bundle("02")}})
	last := statuses[len(statuses)-1]
	if last.Phase != Error || last.Generation != 2 || last.Serial != "01" || last.Message != "install TLS: postgresql: could not load private key file" {
		t.Errorf("status after a failed install = %+v; want Error at generation 2 naming the datastore's message, still serving 01", last)
	}
}

func TestAgentDisablingSSLRemovesTheConfiguration(t *testing.T) {
	rec := &recorder{outcome: installers.Reloaded}
	statuses := run(t, filepath.Join(t.TempDir(), "state"), rec,
		answer{desired: &Desired{Generation: 1, SSL: true, Bundle: bundle("01")}},
		answer{desired: &Desired{Generation: 2, SSL: false}},
	)
	last := statuses[len(statuses)-1]
	if last.Phase != Active || last.SSL || last.Serial != "" || rec.calls[len(rec.calls)-1] != "remove" {
		t.Errorf("after disabling: %+v, calls %v", last, rec.calls)
	}
}

func TestAgentBacksOffWhileTheReconcilerIsAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{outcome: installers.Reloaded}
		down := errors.New("connection refused")
		start := time.Now()
		statuses := run(t, filepath.Join(t.TempDir(), "state"), rec,
			answer{desired: &Desired{Generation: 1, SSL: true, Bundle: bundle("01")}},
			answer{err: down}, answer{err: down}, answer{err: down}, answer{err: down},
			answer{desired: &Desired{Generation: 2, SSL: true, Bundle: bundle("02")}},
		)
		if waited := time.Since(start); waited < 400*time.Millisecond || waited > 20*time.Second {
			t.Errorf("four failures took %s of backoff; want between 0.4s and 20s", waited)
		}
		for _, s := range statuses[1:6] {
			if s.Generation != 1 || s.Phase != Active {
				t.Errorf("while the reconciler was away the agent reported %+v; want the last applied state", s)
			}
		}
		if statuses[len(statuses)-1].Serial != "02" {
			t.Errorf("after the outage the new generation was not applied: %+v", statuses[len(statuses)-1])
		}
	})
}
