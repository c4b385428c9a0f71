package reconciler

import (
	"context"
	"fmt"
	"strings"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
	"github.com/reconciler-dev/reconciler/sources"
	"github.com/reconciler-dev/reconciler/specs"
)

// Planner plans revision after revision of one fleet, as Diff plans one,
// and remembers what it read: given the files a new revision changed, it
// reads and evaluates only those, so a one-file commit in a fleet of ten
// thousand costs about one file. Not safe for concurrent use.
type Planner struct {
	in   DiffInput // Desired, Base and Observed unused
	last *planned
}

// planned is what the last Plan read.
type planned struct {
	revision string
	fleet    *specs.Fleet
	engine   *policy.Engine // nil: no policies, or they failed to load
	problems []plan.Problem // the policies' problems
	verdicts map[*specs.Instance]policy.Verdict
}

// NewPlanner returns a planner for the fleet in's fields locate and tune.
func NewPlanner(in DiffInput) *Planner { return &Planner{in: in} }

// Plan plans snap against observed (what was applied). changed lists the
// paths, from the fleet root, that differ between the last revision
// planned and snap (sources.ChangeLister's answer); nil means unknown, and
// everything is read again, as it is on the first call. A change outside
// the instances directory (a policy, a data file), or policies with
// fleet-scoped rules, also mean everything.
func (pl *Planner) Plan(ctx context.Context, snap *sources.Snapshot, observed []*specs.Instance, changed []string) (*plan.Plan, error) {
	last := pl.last
	next := &planned{revision: snap.Revision}
	var err error
	if last != nil && changed != nil && pl.onlyInstances(changed) && (last.engine == nil || !last.engine.HasFleetRules()) {
		if next.fleet, err = last.fleet.Reload(ctx, snap.FS, changed); err != nil {
			return nil, fmt.Errorf("load desired state: %w", err)
		}
		next.engine, next.problems = last.engine, last.problems
	} else {
		last = nil
		if next.fleet, err = specs.Load(ctx, snap.FS, pl.in.Instances, specs.WithDefaults(pl.in.Defaults)); err != nil {
			return nil, fmt.Errorf("load desired state: %w", err)
		}
		in := pl.in
		in.Desired = snap
		if next.engine, next.problems, err = loadPolicies(ctx, in); err != nil {
			return nil, err
		}
	}
	opts := pl.in.Plan
	if last != nil {
		opts.Known = func(in *specs.Instance) (policy.Verdict, bool) {
			v, ok := last.verdicts[in] // the same document, read from a file that did not change
			return v, ok
		}
	}
	var eval plan.Evaluator
	if next.engine != nil {
		eval = next.engine
	}
	p, err := plan.Compute(ctx, next.fleet, observed, eval, opts)
	if err != nil {
		return nil, err
	}
	p.Problems = append(p.Problems, next.problems...)
	next.verdicts = make(map[*specs.Instance]policy.Verdict, len(p.Instances))
	for _, pi := range p.Instances {
		if pi.Desired != nil {
			next.verdicts[pi.Desired] = pi.Policy
		}
	}
	pl.last = next
	return p, nil
}

// onlyInstances reports whether every changed path is under the instances
// directory and none under the policies directory.
func (pl *Planner) onlyInstances(changed []string) bool {
	for _, p := range changed {
		if !under(p, pl.in.Instances) || (pl.in.Policies != "" && under(p, pl.in.Policies)) {
			return false
		}
	}
	return true
}

func under(p, dir string) bool {
	return dir == "." || dir == "" || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}
