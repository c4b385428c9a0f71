package controller

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/reconciler-dev/reconciler/agent"
	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/transport"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
	"github.com/reconciler-dev/reconciler/reconciler/store"
	"github.com/reconciler-dev/reconciler/specs"
	"github.com/reconciler-dev/reconciler/vault"
)

// reconcile takes one instance one step further; doc.go lists the steps.
// It returns an error for the queue to retry with backoff.
func (c *Controller) reconcile(ctx context.Context, name string) error {
	c.mu.Lock()
	pi := c.plan[name]
	revision := c.revision
	c.mu.Unlock()
	if pi == nil {
		return nil
	}
	rec, err := c.cfg.Store.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		rec, err = &store.Record{Name: name}, nil
	}
	if err != nil {
		return fmt.Errorf("read state of %s: %w", name, err)
	}

	// hold: nothing is touched.
	switch {
	case pi.Held != "":
		c.setPhase(name, "", "held at its last applied state: "+pi.Held)
		return nil
	case pi.Denied():
		c.setPhase(name, agent.Denied, denials(pi))
		return nil
	case pi.Change == plan.Delete && !c.cfg.Prune:
		c.setPhase(name, "", "its file was deleted: left as it is and no longer managed (set reconcile.prune to remove SSL)")
		c.setUnmanaged(name, true)
		return nil
	}
	c.setUnmanaged(name, false) // its file may be back
	d := pi.Desired             // nil for a prune

	// register: the agent endpoint knows the instance and its keys.
	if err := c.register(ctx, rec, d == nil || !d.RPCEncrypted()); err != nil {
		return err
	}
	// create-rpc-key: stored wrapped first, then handed to the server.
	if d != nil && d.RPCEncrypted() {
		if rec, err = c.ensureKey(ctx, rec); err != nil {
			return err
		}
	}
	// confirm: the agent reported the generation in flight.
	if done, err := c.confirm(ctx, name, rec); done || err != nil {
		return err
	}
	// A plan made before the instance's last applied state was recorded
	// would undo it (a create of what was just created): wait for the
	// plan that confirmation asked for.
	c.mu.Lock()
	stale := c.appliedSpec[name] != pi.Observed
	c.mu.Unlock()
	if stale {
		c.Trigger()
		return nil
	}
	// publish, when the plan, a renewal or drift asks for it, and once
	// the agent is there to take it: no certificate is issued for a host
	// that has no agent yet.
	why := c.needsPublish(pi, rec)
	if obs, ok := c.cfg.Agents.Observed(name); why != "" && (!ok || obs.LastSeen.IsZero()) {
		c.setPhase(name, agent.Unreachable, "waiting for its agent to connect (set one up with reconciler agent bootstrap "+name+")")
		return nil
	}
	switch {
	case why != "":
		c.log.InfoContext(ctx, "publishing desired state", "instance", name, "revision", revision, "why", why)
		return c.publish(ctx, pi, rec, revision)
	case pi.Change != plan.None:
		// Fields that change nothing on the host (labels, a comment):
		// the new spec is simply applied.
		return c.applied(ctx, name, revision, d, nil)
	}
	c.setPhase(name, "", "")
	return nil
}

// needsPublish says why the instance's agent must get a new generation,
// or "" when it need not.
func (c *Controller) needsPublish(pi *plan.Instance, rec *store.Record) string {
	d := pi.Desired
	if d == nil {
		if rec.Certificate != nil && rec.Certificate.State != store.CertRevoked {
			return "prune: remove SSL before forgetting the instance"
		}
		return ""
	}
	for _, a := range pi.Actions {
		switch a {
		case plan.IssueCertificate, plan.InstallSSL, plan.RemoveSSL:
			return "plan: " + string(a)
		}
	}
	if rec.Generation == 0 {
		return "first desired state: the agent confirms it (and takes out any TLS configuration left from before, for SSL off)"
	}
	if !d.SSLEnabled() {
		return ""
	}
	cert := rec.Certificate
	switch {
	case cert == nil || cert.State == store.CertRevoked:
		return "no certificate"
	case cert.State == store.CertIssued:
		return "a certificate was issued but never confirmed installed"
	case renewalDue(cert, c.now()):
		return "renewal: two thirds of the certificate's lifetime have passed"
	}
	obs, ok := c.cfg.Agents.Observed(rec.Name)
	if ok && obs.Status.Generation == rec.Generation && obs.Status.Phase == agent.Active && !obs.Status.Verified {
		return "drift: the agent no longer sees the certificate served"
	}
	return ""
}

// renewalDue reports whether two thirds of cert's lifetime have passed,
// with a jitter of up to a twentieth of the lifetime drawn from its
// serial, so certificates issued together do not renew together, and the
// same certificate always renews at the same moment.
func renewalDue(cert *store.Certificate, now time.Time) bool {
	life := cert.NotAfter.Sub(cert.NotBefore)
	if life <= 0 {
		return true
	}
	var h uint64
	for _, b := range []byte(cert.Serial) {
		h = h*31 + uint64(b)
	}
	jitter := time.Duration(h % uint64(life/20+1))
	return now.After(cert.NotBefore.Add(life*2/3 - jitter))
}

// register makes sure the agents' server serves the instance with the
// keys the store holds.
func (c *Controller) register(ctx context.Context, rec *store.Record, allowPlaintext bool) error {
	c.mu.Lock()
	done := c.registered[rec.Name]
	c.mu.Unlock()
	if done {
		return nil
	}
	var keys transport.Keys
	keys.AllowPlaintext = allowPlaintext
	for _, wk := range rec.Keys {
		secret, err := c.cfg.Providers.Keys.Unwrap(ctx, rec.Name, wk.Wrapped)
		if err != nil {
			return fmt.Errorf("unwrap RPC key %d of %s: %w", wk.Version, rec.Name, err)
		}
		k := &transport.Key{Version: wk.Version, Secret: secret}
		if wk.State == store.KeyNext {
			keys.Next = k
		} else {
			keys.Current = k
		}
	}
	if err := c.cfg.Agents.Register(rec.Name, keys); err != nil {
		return fmt.Errorf("serve the agent of %s: %w", rec.Name, err)
	}
	c.mu.Lock()
	c.registered[rec.Name] = true
	c.mu.Unlock()
	return nil
}

// ensureKey gives an instance that has none its first RPC key: made by
// the provider, committed wrapped, then handed to the agents' server,
// which delivers it at enrollment.
func (c *Controller) ensureKey(ctx context.Context, rec *store.Record) (*store.Record, error) {
	if _, ok := rec.Key(store.KeyCurrent); ok {
		return rec, nil
	}
	dk, err := c.cfg.Providers.Keys.NewKey(ctx, rec.Name)
	if err != nil {
		return nil, fmt.Errorf("create RPC key of %s: %w", rec.Name, err)
	}
	rec, err = c.cfg.Store.Update(ctx, rec.Name, func(r *store.Record) error {
		if _, ok := r.Key(store.KeyCurrent); ok {
			return errKeyRace
		}
		r.Keys = append(r.Keys, store.WrappedKey{Version: 1, Wrapped: dk.Wrapped, MasterVersion: dk.MasterVersion, State: store.KeyCurrent})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store RPC key of %s: %w", rec.Name, err)
	}
	if err := c.cfg.Agents.Rotate(rec.Name, transport.Key{Version: 1, Secret: dk.Plaintext}); err != nil {
		return nil, fmt.Errorf("serve RPC key of %s: %w", rec.Name, err)
	}
	c.log.InfoContext(ctx, "created the instance's RPC key; its agent enrolls with a token from reconciler agent bootstrap", "instance", rec.Name)
	return rec, nil
}

var errKeyRace = errors.New("another worker stored a key first")

// confirm looks at what the agent reported for the generation in flight.
// It reports done when there is nothing more to do in this turn.
func (c *Controller) confirm(ctx context.Context, name string, rec *store.Record) (bool, error) {
	c.mu.Lock()
	p := c.pending[name]
	c.mu.Unlock()
	if p == nil {
		return false, nil
	}
	obs, _ := c.cfg.Agents.Observed(name)
	st := obs.Status
	if st.Generation < p.generation && !p.restoredAt.IsZero() && obs.LastSeen.After(p.restoredAt) {
		// Published by a process that is gone, with a private key that went
		// with it, and the agent reports it never applied it: publish anew.
		c.log.InfoContext(ctx, "the agent never got the generation in flight; publishing a new one",
			"instance", name, "generation", p.generation, "agent_generation", st.Generation)
		c.forget(name)
		return false, nil
	}
	if st.Generation < p.generation {
		c.setPhase(name, agent.Applying, fmt.Sprintf("waiting for the agent to apply generation %d", p.generation))
		return true, nil
	}
	switch st.Phase {
	case agent.RestartRequired:
		c.setPhase(name, agent.RestartRequired, st.Message)
		return true, nil
	case agent.Error:
		c.forget(name)
		return true, fmt.Errorf("the agent of %s could not apply generation %d: %s", name, p.generation, st.Message)
	case agent.Active:
	default:
		return true, nil
	}
	if p.ssl && !(st.Verified && obs.Sealed && rec.Certificate != nil && st.Serial == rec.Certificate.Serial) {
		c.forget(name)
		return true, fmt.Errorf("the agent of %s reports Active but not the issued certificate verified over a sealed channel", name)
	}
	if err := c.confirmed(ctx, name, p, rec); err != nil {
		return true, err
	}
	c.forget(name)
	c.metrics.latency.Observe(c.now().Sub(p.seenAt).Seconds())
	// applied re-planned the instance against what it recorded, unless the
	// desired state moved on while the generation was in flight (or it was
	// a prune): then the fleet is planned again rather than acted on.
	c.mu.Lock()
	stale := c.plan[name] == nil || c.plan[name].Observed != c.appliedSpec[name]
	c.mu.Unlock()
	if stale {
		c.Trigger()
	}
	return true, nil
}

// confirmed records a confirmed generation: the certificate installed and
// the one it replaced revoked, or SSL off and its certificate revoked;
// then the revision applied (or, for a prune, the instance forgotten).
func (c *Controller) confirmed(ctx context.Context, name string, p *pending, rec *store.Record) error {
	var revoke []string
	if p.ssl {
		if rec.PreviousSerial != "" {
			revoke = append(revoke, rec.PreviousSerial)
		}
	} else if rec.Certificate != nil && rec.Certificate.State != store.CertRevoked {
		revoke = append(revoke, rec.Certificate.Serial)
	}
	for _, serial := range revoke {
		if err := c.revoke(ctx, p.spec, serial); err != nil {
			return err
		}
	}
	if p.spec == nil {
		if err := c.cfg.Store.Delete(ctx, name); err != nil {
			return fmt.Errorf("forget pruned instance %s: %w", name, err)
		}
		c.mu.Lock()
		delete(c.appliedSpec, name)
		c.appliedChanges++
		c.mu.Unlock()
		c.cfg.Agents.Unregister(name)
		c.mu.Lock()
		delete(c.registered, name)
		c.mu.Unlock()
		return nil
	}
	return c.applied(ctx, name, p.revision, p.spec, func(r *store.Record) {
		if r.Certificate != nil {
			if p.ssl {
				r.Certificate.State = store.CertInstalled
			} else {
				r.Certificate.State = store.CertRevoked
			}
		}
		r.PreviousSerial = ""
	})
}

// applied records spec as applied at revision, with the history.
func (c *Controller) applied(ctx context.Context, name, revision string, spec *specs.Instance, also func(*store.Record)) error {
	data, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode applied state of %s: %w", name, err)
	}
	obs, _ := c.cfg.Agents.Observed(name)
	now := c.now()
	_, err = c.cfg.Store.Update(ctx, name, func(r *store.Record) error {
		if also != nil {
			also(r)
		}
		r.AppliedRevision, r.AppliedAt, r.AppliedSpec = revision, now, data
		r.InFlight = nil
		r.AddHistory(store.Applied{Revision: revision, Generation: r.Generation, At: now})
		r.Status = storeStatus(obs.Status)
		sent, received, _ := c.cfg.Agents.Watermarks(name)
		r.Watermarks = store.Watermarks{Sent: sent, Received: received}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record applied state of %s: %w", name, err)
	}
	c.mu.Lock()
	c.appliedSpec[name] = spec
	c.appliedChanges++ // the plan is stale: the next read plans again
	if pi := c.plan[name]; pi != nil && pi.Desired == spec {
		// Unless the plan's own document was applied: then only this
		// instance's plan changes, and planning the fleet again would find
		// nothing else. A plan being made meanwhile is made again (sync).
		again := pi.Against(spec, c.planOptions)
		c.plan[name] = &again
		if c.plannedChanges == c.appliedChanges-1 {
			c.plannedChanges = c.appliedChanges
		}
	}
	c.mu.Unlock()
	c.setPhase(name, "", "")
	return nil
}

// publish issues a certificate when SSL is wanted (stored, serial first),
// stores the next generation, then publishes the desired state.
func (c *Controller) publish(ctx context.Context, pi *plan.Instance, rec *store.Record, revision string) error {
	d := pi.Desired
	ssl := d != nil && d.SSLEnabled()
	var bundle *installers.Bundle
	var cert *vault.Certificate
	if ssl {
		if old := rec.Certificate; old != nil && old.State == store.CertIssued && old.Serial != rec.PreviousSerial {
			// Issued but never confirmed: it may never have reached the
			// host; it is not trusted, and replaced.
			if err := c.revoke(ctx, d, old.Serial); err != nil {
				return err
			}
		}
		iss, err := c.issuer(d)
		if err != nil {
			return err
		}
		cert, err = iss.Issue(ctx, vault.CertificateRequest{Instance: pi.Name, Hosts: d.Spec.Hosts, TTL: d.Spec.TLS.TTL, KeyType: d.Spec.TLS.KeyType})
		if err != nil {
			return fmt.Errorf("issue certificate of %s: %w", pi.Name, err)
		}
		bundle = &installers.Bundle{CertPEM: cert.CertPEM, ChainPEM: cert.ChainPEM, Key: cert.Key,
			Serial: cert.Serial, Fingerprint: cert.Fingerprint,
			MinVersion: d.Spec.TLS.MinVersion, RequireSecureTransport: d.Spec.TLS.RequireSecureTransport}
	}
	var spec []byte
	if d != nil {
		var err error
		if spec, err = json.Marshal(d); err != nil {
			return fmt.Errorf("encode desired state of %s: %w", pi.Name, err)
		}
	}
	now := c.now()
	rec, err := c.cfg.Store.Update(ctx, pi.Name, func(r *store.Record) error {
		r.Generation++
		r.InFlight = &store.InFlight{Generation: r.Generation, Revision: revision, Spec: spec, SSL: ssl, PublishedAt: now}
		if cert != nil {
			if r.Certificate != nil && r.Certificate.State == store.CertInstalled {
				r.PreviousSerial = r.Certificate.Serial
			}
			r.Certificate = &store.Certificate{Serial: cert.Serial, Fingerprint: cert.Fingerprint,
				NotBefore: cert.NotBefore, NotAfter: cert.NotAfter, State: store.CertIssued}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store generation of %s: %w", pi.Name, err)
	}
	c.mu.Lock()
	c.pending[pi.Name] = &pending{generation: rec.Generation, revision: revision, spec: d, ssl: ssl,
		publishedAt: now, seenAt: cmp.Or(c.seenAt[revision], now)}
	c.mu.Unlock()
	if err := c.cfg.Agents.Publish(pi.Name, agent.Desired{Generation: rec.Generation, SSL: ssl, Bundle: bundle}); err != nil {
		c.forget(pi.Name)
		return fmt.Errorf("publish desired state of %s: %w", pi.Name, err)
	}
	c.setPhase(pi.Name, agent.Applying, fmt.Sprintf("generation %d published; waiting for the agent", rec.Generation))
	return nil
}

func (c *Controller) issuer(d *specs.Instance) (vault.Issuer, error) {
	name := cmp.Or(d.Spec.TLS.Provider, c.cfg.Providers.Default)
	iss, err := c.cfg.Providers.Issuers.Issuer(name)
	if err != nil {
		return nil, fmt.Errorf("key provider of %s: %w", d.Metadata.Name, err)
	}
	return iss, nil
}

// revoke revokes serial with the instance's issuer; an issuer that
// cannot revoke (certificates it did not issue) is not an error.
func (c *Controller) revoke(ctx context.Context, d *specs.Instance, serial string) error {
	var iss vault.Issuer
	var err error
	if d != nil {
		iss, err = c.issuer(d)
	} else {
		iss, err = c.cfg.Providers.Issuers.Issuer(c.cfg.Providers.Default)
	}
	if err != nil {
		return err
	}
	if err := iss.Revoke(ctx, serial); err != nil && !errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("revoke certificate %s: %w", serial, err)
	}
	c.metrics.revocations.Inc()
	return nil
}

func (c *Controller) forget(name string) {
	c.mu.Lock()
	delete(c.pending, name)
	c.mu.Unlock()
}

// setPhase records the controller's own phase and message for an
// instance; an empty phase leaves the phase to what the agent reports.
func (c *Controller) setPhase(name string, phase agent.Phase, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[name]
	v.Phase, v.Message = phase, msg
	c.views[name] = v
}

func (c *Controller) setUnmanaged(name string, unmanaged bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := c.views[name]
	v.Unmanaged = unmanaged
	c.views[name] = v
}

// viewLocked composes an instance's view from the plan, the controller's
// phase and what the agent last reported; c.mu is held.
func (c *Controller) viewLocked(name string) View {
	pi := c.plan[name]
	own := c.views[name]
	v := View{Name: name, File: pi.File, Datastore: pi.Datastore, Phase: own.Phase, Message: own.Message, Unmanaged: own.Unmanaged}
	spec := pi.Desired
	if spec == nil {
		spec = pi.Observed
	}
	if spec != nil {
		v.SSL, v.RPC = spec.SSLEnabled(), spec.RPCEncrypted()
	}
	for _, m := range pi.Policy.Deny {
		v.Denied = append(v.Denied, m.Msg)
	}
	obs, ok := c.cfg.Agents.Observed(name)
	if ok {
		st := obs.Status
		v.LastSeen, v.KeyVersion, v.Generation = obs.LastSeen, obs.KeyVersion, st.Generation
		v.Verified = obs.Sealed && st.SSL && st.Verified && st.Phase == agent.Active
		if st.SSL {
			v.Serial, v.NotAfter = st.Serial, st.NotAfter
		}
		if v.Phase == "" {
			v.Phase, v.Message = st.Phase, cmp.Or(v.Message, st.Message)
		}
	}
	if v.Phase == "" || (v.Phase == agent.Pending && (!ok || obs.LastSeen.IsZero())) {
		v.Phase = agent.Pending
		if !ok || obs.LastSeen.IsZero() {
			v.Phase, v.Message = agent.Unreachable, cmp.Or(v.Message, "its agent has not reported yet")
		}
	}
	return v
}

func sortViews(vs []View) {
	slices.SortFunc(vs, func(a, b View) int { return strings.Compare(a.Name, b.Name) })
}

func denials(pi *plan.Instance) string {
	msgs := make([]string, len(pi.Policy.Deny))
	for i, m := range pi.Policy.Deny {
		msgs[i] = m.Msg
	}
	return "denied by policy, left untouched: " + strings.Join(msgs, "; ")
}

func storeStatus(s agent.Status) store.AgentStatus {
	return store.AgentStatus{Phase: string(s.Phase), Generation: s.Generation, SSL: s.SSL, Verified: s.Verified,
		Serial: s.Serial, Fingerprint: s.Fingerprint, NotAfter: s.NotAfter, KeyVersion: s.KeyVersion,
		Message: s.Message, ReportedAt: s.ReportedAt}
}
