package controller

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/sources"
	"github.com/reconciler-dev/reconciler/specs"
	"github.com/reconciler-dev/reconciler/vault"
)

// Providers are the key providers the controller uses.
type Providers struct {
	// Issuers issue certificates, by provider name (spec.tls.provider).
	Issuers vault.Registry
	// Default names the issuer of instances that name none.
	Default string
	// Keys makes and unwraps the per-instance RPC keys.
	Keys vault.KeyWrapper
}

// Config is what the controller needs.
type Config struct {
	// Source is the fleet repository; one that is a sources.Fetcher is
	// fetched before every read. Revision is what is read ("" for the
	// source's default: the working tree, or HEAD; a branch name for a
	// remote).
	Source          sources.Source
	Revision        string
	Instances       string // instances directory under the fleet root
	Policies        string // policy directory under the fleet root
	RequirePolicies bool
	PolicyOptions   []policy.Option
	Defaults        specs.Defaults // zero: specs.DefaultDefaults()
	Providers       Providers
	Store           store.Store
	// Agents is the agents' server; the daemon serves its Handler and
	// calls AgentReported from its status hook.
	Agents *transport.Server
	// Concurrency bounds the instances reconciled at once (default 8).
	Concurrency int
	// Poll is how often the source is read (default 1m, jittered by up
	// to a tenth); Resync how often every instance is checked again for
	// drift and renewal (default 10m).
	Poll, Resync time.Duration
	// Prune removes SSL from instances whose file was deleted, then
	// forgets them; without it they are released untouched.
	Prune bool
	// Verify, when set, checks a revision before anything of it is
	// planned: the commits from the last revision accepted (from; "" when
	// none was) to the one read. A revision it refuses is never applied:
	// the last plan stays, and the refusal is reported (log, metric,
	// Source) until a revision passes. A rewritten history is one such
	// refusal; AcceptRevision lets an operator take it.
	Verify func(ctx context.Context, from, to string) error
}

// Option configures a Controller.
type Option func(*Controller)

// WithLogger sets the logger (nil, the default, discards).
func WithLogger(l *slog.Logger) Option { return func(c *Controller) { c.log = l } }

// WithRegisterer registers the controller's metrics.
func WithRegisterer(r prometheus.Registerer) Option { return func(c *Controller) { c.reg = r } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(c *Controller) { c.now = now } }

// Controller reconciles the fleet. Run drives it.
type Controller struct {
	cfg     Config
	log     *slog.Logger
	reg     prometheus.Registerer
	now     func() time.Time
	metrics *metrics
	queue   *queue
	trigger chan struct{}

	mu         sync.Mutex
	plan       map[string]*plan.Instance
	problems   []plan.Problem
	revision   string
	seenAt     map[string]time.Time // when each revision was first read, for latency
	pending    map[string]*pending
	views      map[string]View
	registered map[string]bool
	reports    map[string]report
	// appliedSpec is each instance's document as last applied: what the store
	// holds, kept here so that a plan does not read the store.
	appliedSpec map[string]*specs.Instance
	planner     *reconciler.Planner // used by the sync loop only
	planOptions plan.Options        // the planner's, for re-planning one instance
	// fingerprint is, for a source without history (a directory), the
	// names, sizes and times of the files last planned: a poll that finds
	// them the same plans nothing.
	fingerprint string
	// appliedChanges counts changes to appliedSpec; plannedChanges is its
	// value when the last plan was made, which a change makes stale.
	appliedChanges, plannedChanges uint64
	// source is what became of the last revisions read: the one
	// accepted, and the one refused since, if any.
	source   SourceState
	accepted string // the revision an operator accepted despite its history (AcceptRevision)
}

// SourceState is what the controller made of the fleet source's revisions.
type SourceState struct {
	// Revision is the revision planned, the last that passed verification.
	Revision string `json:"revision,omitempty"`
	// Refused is a later revision that did not pass, and Reason why; both
	// empty when the latest revision read is the one planned.
	Refused string `json:"refused,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// RefusedAt is when it was first refused.
	RefusedAt time.Time `json:"refusedAt,omitzero"`
}

// pending is a generation published and not yet confirmed by the agent.
// The bundle's private key lives only here, never in the store.
type pending struct {
	generation  uint64
	revision    string
	spec        *specs.Instance // nil: a prune
	ssl         bool
	publishedAt time.Time
	seenAt      time.Time // when the revision was first read
	// restoredAt is set for a generation that an earlier process (or
	// another replica) published with a certificate: its private key died
	// with that process, so if the agent shows it never got it, a new
	// generation is issued.
	restoredAt time.Time
}

// View is an instance as the API shows it.
type View struct {
	Name      string      `json:"name"`
	File      string      `json:"file,omitempty"`
	Datastore string      `json:"datastore,omitempty"`
	Phase     agent.Phase `json:"phase"`
	Message   string      `json:"message,omitempty"`
	// SSL is what is desired; Verified what the agent proved over a
	// sealed channel.
	SSL        bool      `json:"ssl"`
	Verified   bool      `json:"verified"`
	RPC        bool      `json:"rpcEncryption"`
	Serial     string    `json:"serial,omitempty"`
	NotAfter   time.Time `json:"notAfter,omitzero"`
	KeyVersion uint32    `json:"keyVersion,omitempty"`
	Generation uint64    `json:"generation"`
	Revision   string    `json:"appliedRevision,omitempty"`
	LastSeen   time.Time `json:"lastSeen,omitzero"`
	Denied     []string  `json:"denied,omitempty"`
	Unmanaged  bool      `json:"unmanaged,omitempty"`
}

// New returns a controller for cfg.
func New(cfg Config, opts ...Option) *Controller {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Defaults == (specs.Defaults{}) {
		cfg.Defaults = specs.DefaultDefaults()
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Minute
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 10 * time.Minute
	}
	c := &Controller{cfg: cfg, now: time.Now, queue: newQueue(), trigger: make(chan struct{}, 1),
		plan: map[string]*plan.Instance{}, seenAt: map[string]time.Time{}, pending: map[string]*pending{},
		views: map[string]View{}, registered: map[string]bool{}, reports: map[string]report{}, appliedSpec: map[string]*specs.Instance{}}
	c.planOptions = plan.Options{Prune: cfg.Prune}
	c.planner = reconciler.NewPlanner(reconciler.DiffInput{Instances: cfg.Instances, Policies: cfg.Policies,
		RequirePolicies: cfg.RequirePolicies, PolicyOptions: cfg.PolicyOptions, Defaults: cfg.Defaults,
		Plan: c.planOptions})
	for _, o := range opts {
		o(c)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.metrics = newMetrics(c, c.reg)
	return c
}

// Trigger asks for the source to be read again now (a webhook, a file
// change). It never blocks.
func (c *Controller) Trigger() {
	select {
	case c.trigger <- struct{}{}:
	default:
	}
}

// AgentReported is the agents' server status hook: the instance's agent
// reported, so look at the instance again if that can matter: a
// generation is in flight, or the report differs from the last one (a
// heartbeat that repeats itself costs nothing). It never blocks.
func (c *Controller) AgentReported(_ context.Context, s agent.Status) {
	key := report{s.Phase, s.Generation, s.SSL, s.Verified, s.Serial, s.KeyVersion}
	c.mu.Lock()
	same := c.reports[s.Instance] == key && c.pending[s.Instance] == nil
	c.reports[s.Instance] = key
	c.mu.Unlock()
	if !same {
		c.queue.add(s.Instance)
	}
}

// report is what of an agent's status can change what the controller does.
type report struct {
	phase      agent.Phase
	generation uint64
	ssl        bool
	verified   bool
	serial     string
	keyVersion uint32
}

// Run reconciles until ctx is done, then returns nil once the workers
// have stopped.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.restore(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for range c.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx)
		}()
	}
	defer func() {
		c.queue.close()
		wg.Wait()
	}()
	poll := time.NewTimer(0)
	defer poll.Stop()
	resync := time.NewTicker(c.cfg.Resync)
	defer resync.Stop()
	failures := 0
	for {
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case <-poll.C:
			ok = c.sync(ctx, false)
		case <-c.trigger:
			ok = c.sync(ctx, false)
		case <-resync.C:
			ok = c.sync(ctx, true)
		}
		// A failed read is tried again soon, with backoff, rather than a
		// whole poll interval later (a first read that fails would
		// otherwise leave the daemon unready that long).
		if ok {
			failures = 0
			poll.Reset(c.cfg.Poll + time.Duration(rand.Int64N(int64(c.cfg.Poll/10)+1)))
		} else {
			failures++
			poll.Reset(min(backoff(failures), c.cfg.Poll))
		}
	}
}

// restore registers every instance the store knows with the agents'
// server, so agents are served from the first second after a restart.
func (c *Controller) restore(ctx context.Context) error {
	recs, err := c.cfg.Store.List(ctx)
	if err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	var last time.Time
	for i := range recs {
		if recs[i].AppliedAt.After(last) {
			// Verification of the next revision starts from the last one
			// applied, whoever applied it.
			last = recs[i].AppliedAt
			c.mu.Lock()
			c.source.Revision = recs[i].AppliedRevision
			c.mu.Unlock()
		}
		rpcOff := true
		if len(recs[i].AppliedSpec) > 0 {
			spec := new(specs.Instance)
			if err := json.Unmarshal(recs[i].AppliedSpec, spec); err != nil {
				c.log.ErrorContext(ctx, "stored applied state is damaged; planning the instance as new", "instance", recs[i].Name, "error", err)
			} else {
				rpcOff = !spec.RPCEncrypted()
				c.mu.Lock()
				c.appliedSpec[recs[i].Name] = spec
				c.mu.Unlock()
			}
		}
		if err := c.register(ctx, &recs[i], rpcOff); err != nil {
			c.log.ErrorContext(ctx, "cannot serve the agent of a stored instance", "instance", recs[i].Name, "error", err)
			continue
		}
		c.restoreInFlight(ctx, &recs[i])
	}
	return nil
}

// restoreInFlight takes up the generation a previous process published
// and did not see confirmed, so that it is confirmed rather than issued
// again. One without a certificate is published again as it was (it holds
// no secret); one with a certificate is waited for, since its private key
// is gone: confirm issues anew if the agent shows it never got it.
func (c *Controller) restoreInFlight(ctx context.Context, rec *store.Record) {
	f := rec.InFlight
	if f == nil || f.Generation != rec.Generation {
		return
	}
	var spec *specs.Instance
	if len(f.Spec) > 0 {
		spec = new(specs.Instance)
		if err := json.Unmarshal(f.Spec, spec); err != nil {
			c.log.ErrorContext(ctx, "stored generation in flight is damaged; planning the instance afresh", "instance", rec.Name, "error", err)
			return
		}
	}
	p := &pending{generation: f.Generation, revision: f.Revision, spec: spec, ssl: f.SSL, publishedAt: f.PublishedAt, seenAt: f.PublishedAt}
	if f.SSL {
		p.restoredAt = c.now()
	} else if err := c.cfg.Agents.Publish(rec.Name, agent.Desired{Generation: f.Generation}); err != nil {
		c.log.ErrorContext(ctx, "cannot publish the stored generation in flight again", "instance", rec.Name, "error", err)
		return
	}
	c.mu.Lock()
	c.pending[rec.Name] = p
	c.mu.Unlock()
	c.log.InfoContext(ctx, "took up a generation in flight", "instance", rec.Name, "generation", f.Generation, "ssl", f.SSL)
}

// sync reads the source, plans, and queues what needs work: instances
// that change, wait for their agent, or (on a resync) everything.
func (c *Controller) sync(ctx context.Context, all bool) bool {
	start := c.now()
	var err error
	if f, ok := c.cfg.Source.(sources.Fetcher); ok {
		err = f.Fetch(ctx)
	}
	var snap *sources.Snapshot
	if err == nil {
		snap, err = c.cfg.Source.Snapshot(ctx, c.cfg.Revision)
	}
	c.metrics.fetch.Observe(c.now().Sub(start).Seconds())
	if err != nil {
		if ctx.Err() == nil {
			c.metrics.fetchErrors.Inc()
			c.log.ErrorContext(ctx, "cannot read the fleet source; keeping the last plan", "error", err)
		}
		return false
	}
	if !c.verify(ctx, snap.Revision) {
		return true // read fine; the refusal is reported, and the next poll looks again
	}
	var fp string
	paths := c.changed(ctx, snap.Revision, all)
	if _, history := c.cfg.Source.(sources.ChangeLister); !history {
		fp = fingerprint(snap.FS, c.cfg.Instances, c.cfg.Policies)
		c.mu.Lock()
		files := fp != "" && fp == c.fingerprint && c.revision == snap.Revision
		same := files && c.appliedChanges == c.plannedChanges
		c.mu.Unlock()
		if same && !all {
			return true // nothing was written since the last plan
		}
		if files && !all {
			paths = []string{} // only what was applied moved: plan from the files as read
		}
	}
	applied, planned := c.appliedSpecs()
	p, err := c.planner.Plan(ctx, snap, applied, paths)
	if err != nil {
		c.log.ErrorContext(ctx, "cannot plan the fleet", "revision", snap.Revision, "error", err)
		return false
	}
	for _, pr := range p.Problems {
		c.log.WarnContext(ctx, "fleet problem", "problem", pr.String())
	}
	c.mu.Lock()
	if _, ok := c.seenAt[snap.Revision]; !ok {
		c.seenAt = map[string]time.Time{snap.Revision: start} // only the latest matters
	}
	c.revision, c.problems, c.fingerprint = snap.Revision, p.Problems, fp
	c.plannedChanges = planned
	if planned != c.appliedChanges {
		// Something was applied while the plan was made, which it does not
		// reflect: plan again.
		defer c.Trigger()
	}
	c.source = SourceState{Revision: snap.Revision}
	old := c.plan
	p.Instances = append(p.Instances, heldUnapplied(old, p)...)
	c.plan = make(map[string]*plan.Instance, len(p.Instances))
	var work, changed []string
	for i := range p.Instances {
		pi := &p.Instances[i]
		c.plan[pi.Name] = pi
		was := old[pi.Name]
		switch {
		case was == nil || !sameDesired(was, pi):
			changed = append(changed, pi.Name) // new desired state: retry at once, even if backing off
		case all || pi.Change != plan.None || pi.Held != "" || pi.Denied() || c.pending[pi.Name] != nil:
			work = append(work, pi.Name)
		}
	}
	for name := range c.views {
		if c.plan[name] == nil {
			delete(c.views, name) // no file and no record: its series go too
			delete(c.reports, name)
		}
	}
	c.mu.Unlock()
	c.metrics.observePlan(p)
	for _, name := range work {
		c.queue.add(name)
	}
	for _, name := range changed {
		c.queue.kick(name)
	}
	return true
}

// verify checks rev with Config.Verify, against the last revision
// accepted, and reports whether it may be planned. A refusal is logged
// once per revision, counted, and kept in Source.
func (c *Controller) verify(ctx context.Context, rev string) bool {
	if c.cfg.Verify == nil {
		return true
	}
	c.mu.Lock()
	from, st, accepted := c.source.Revision, c.source, c.accepted == rev
	c.mu.Unlock()
	if rev == from {
		return true
	}
	if accepted {
		from = "" // taken as it is: verified on its own, whatever came before
	}
	err := c.cfg.Verify(ctx, from, rev)
	if err == nil {
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	if st.Refused != rev {
		c.metrics.refusals.Inc()
		c.log.ErrorContext(ctx, "refusing a revision of the fleet; keeping the last one applied",
			"revision", rev, "applied", from, "reason", err.Error())
		st = SourceState{Revision: from, Refused: rev, Reason: err.Error(), RefusedAt: c.now()}
	}
	c.mu.Lock()
	c.source = st
	c.mu.Unlock()
	return false
}

// Source returns what became of the source's latest revisions.
func (c *Controller) Source() SourceState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.source
}

// AcceptRevision lets the revision rev through verification of its
// history (a branch that was force-pushed): its own commit must still pass
// (in head and strict mode), but not the path from the last revision
// accepted. It reads the source again at once.
func (c *Controller) AcceptRevision(rev string) {
	c.mu.Lock()
	c.accepted = rev
	c.mu.Unlock()
	c.Trigger()
}

// fingerprint digests the name, size and modification time of every file
// under the instances and policies directories of fsys, or returns "" if
// it cannot tell (a file system without times): what a directory source
// offers in place of a revision. A walk with a stat per file costs a
// fraction of reading and planning the files.
func fingerprint(fsys fs.FS, dirs ...string) string {
	h := sha256.New()
	for _, dir := range dirs {
		err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && p == dir {
					return fs.SkipDir
				}
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if !d.IsDir() && info.ModTime().IsZero() {
				return errNoTimes
			}
			fmt.Fprintf(h, "%s\x00%d\x00%d\x00%v\n", p, info.Size(), info.ModTime().UnixNano(), info.Mode())
			return nil
		})
		if err != nil {
			return ""
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

var errNoTimes = errors.New("no modification times")

// changed returns the paths that differ between the revision last
// planned and rev, or nil to plan everything: on a resync, for a source
// without history, or when the source cannot tell.
func (c *Controller) changed(ctx context.Context, rev string, all bool) []string {
	c.mu.Lock()
	last := c.revision
	c.mu.Unlock()
	cl, ok := c.cfg.Source.(sources.ChangeLister)
	if all || !ok || last == "" {
		return nil
	}
	if last == rev {
		return []string{}
	}
	paths, err := cl.Changed(ctx, last, rev)
	if err != nil {
		c.log.WarnContext(ctx, "cannot list what the revision changed; planning the whole fleet", "from", last, "to", rev, "error", err)
		return nil
	}
	return paths
}

// appliedSpecs returns the document last applied of every instance, and
// the count of changes they reflect.
func (c *Controller) appliedSpecs() ([]*specs.Instance, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*specs.Instance, 0, len(c.appliedSpec))
	for _, in := range c.appliedSpec {
		out = append(out, in)
	}
	return out, c.appliedChanges
}

// sameDesired reports whether two plans of an instance want the same:
// the same document, verdict and hold.
func sameDesired(a, b *plan.Instance) bool {
	if a.Held != b.Held || a.Denied() != b.Denied() || (a.Desired == nil) != (b.Desired == nil) {
		return false
	}
	if a.Desired == b.Desired {
		return true // nil, or the same document of a file that did not change
	}
	x, _ := json.Marshal(a.Desired.Raw)
	y, _ := json.Marshal(b.Desired.Raw)
	return bytes.Equal(x, y)
}

// observed decodes what the store says was applied.
func (c *Controller) observed(ctx context.Context) ([]*specs.Instance, error) {
	recs, err := c.cfg.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*specs.Instance, 0, len(recs))
	for _, r := range recs {
		if len(r.AppliedSpec) == 0 {
			continue
		}
		var in specs.Instance
		if err := json.Unmarshal(r.AppliedSpec, &in); err != nil {
			c.log.ErrorContext(ctx, "stored applied state is damaged; planning the instance as new", "instance", r.Name, "error", err)
			continue
		}
		out = append(out, &in)
	}
	return out, nil
}

func (c *Controller) work(ctx context.Context) {
	for {
		name, ok := c.queue.get()
		if !ok {
			return
		}
		start := c.now()
		err := c.reconcile(ctx, name)
		result := "ok"
		if err != nil {
			result = "error"
			if ctx.Err() == nil {
				c.log.WarnContext(ctx, "reconcile failed; retrying with backoff", "instance", name, "error", err,
					"failures", c.queue.failuresOf(name)+1)
				c.setPhase(name, agent.Error, err.Error())
			}
		}
		c.metrics.reconcile.WithLabelValues(result).Observe(c.now().Sub(start).Seconds())
		c.queue.done(name, err != nil && ctx.Err() == nil)
	}
}

// Instances returns every instance's view, sorted by name.
func (c *Controller) Instances() []View {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]View, 0, len(c.plan))
	for name := range c.plan {
		out = append(out, c.viewLocked(name))
	}
	sortViews(out)
	return out
}

// Instance returns one instance's view.
func (c *Controller) Instance(name string) (View, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plan[name] == nil {
		return View{}, false
	}
	return c.viewLocked(name), true
}

// Problems returns the fleet's input errors from the last plan.
func (c *Controller) Problems() []plan.Problem {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]plan.Problem(nil), c.problems...)
}

// Ready reports whether the source was read and planned at least once.
func (c *Controller) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revision != ""
}

// Resync runs an instance's SSL setup again now (POST
// /mgmt/instances/{name}/ssl): the source is read again, and the instance
// is reconciled at once, even if it was backing off after a failure.
func (c *Controller) Resync(name string) bool {
	c.mu.Lock()
	ok := c.plan[name] != nil
	c.mu.Unlock()
	if ok {
		c.Trigger()
		c.queue.kick(name)
	}
	return ok
}

// heldUnapplied returns, as held, the instances of the previous plan that
// were never applied (so the store has no document to plan them from)
// and whose file now has errors: they are reported, not forgotten.
func heldUnapplied(old map[string]*plan.Instance, p *plan.Plan) []plan.Instance {
	inPlan := make(map[string]bool, len(p.Instances))
	for _, pi := range p.Instances {
		inPlan[pi.Name] = true
	}
	broken := map[string]bool{}
	for _, pr := range p.Problems {
		broken[pr.File] = true
	}
	var out []plan.Instance
	for name, was := range old {
		if inPlan[name] || !broken[was.File] {
			continue
		}
		spec := was.Desired
		if spec == nil {
			spec = was.Observed
		}
		out = append(out, plan.Instance{Name: name, File: was.File, Datastore: was.Datastore, Change: plan.None,
			Held: was.File + " has errors", Observed: spec})
	}
	return out
}
