package reconciler

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/reconciler/plan"
	"github.com/reconciler-dev/reconciler/sources"
	"github.com/reconciler-dev/reconciler/specs"
)

// DiffInput is what a dry run compares.
type DiffInput struct {
	// Desired is the state to plan for.
	Desired *sources.Snapshot
	// Base is the state to plan from; nil compares against Observed.
	Base *sources.Snapshot
	// Observed, used when Base is nil, is the state to plan from as
	// instances: what the daemon applied. Both nil is an empty fleet.
	Observed []*specs.Instance
	// Instances is the directory of instance files under the fleet root.
	Instances string
	// Policies is the directory of Rego policies under the fleet root,
	// read at the Desired revision. When it does not exist the plan has no
	// verdicts, unless RequirePolicies makes that an error.
	Policies        string
	RequirePolicies bool
	PolicyOptions   []policy.Option
	Defaults        specs.Defaults
	Plan            plan.Options
}

// Diff loads both states and the policies and plans them. Problems with
// instance files or policies are in the plan, so the caller can report
// them all at once; the error is for what stops the whole run (an
// unreadable source, a cancelled context).
func Diff(ctx context.Context, in DiffInput) (*plan.Plan, error) {
	desired, err := specs.Load(ctx, in.Desired.FS, in.Instances, specs.WithDefaults(in.Defaults))
	if err != nil {
		return nil, fmt.Errorf("load desired state: %w", err)
	}
	observed := in.Observed
	if in.Base != nil {
		base, err := specs.Load(ctx, in.Base.FS, in.Instances, specs.WithDefaults(in.Defaults))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// The base predates the fleet: everything is new.
		case err != nil:
			return nil, fmt.Errorf("load base state: %w", err)
		default:
			observed = base.Instances
		}
	}

	var eval plan.Evaluator
	engine, problems, err := loadPolicies(ctx, in)
	if err != nil {
		return nil, err
	}
	if engine != nil {
		eval = engine
	}

	p, err := plan.Compute(ctx, desired, observed, eval, in.Plan)
	if err != nil {
		return nil, err
	}
	p.Problems = append(p.Problems, problems...)
	return p, nil
}

// loadPolicies returns the engine, or nil when there is no policy
// directory and none is required; policies that do not compile give no
// engine and their problems, for the plan.
func loadPolicies(ctx context.Context, in DiffInput) (*policy.Engine, []plan.Problem, error) {
	if _, err := fs.Stat(in.Desired.FS, in.Policies); errors.Is(err, fs.ErrNotExist) && !in.RequirePolicies {
		return nil, nil, nil
	}
	engine, err := policy.Load(ctx, in.Desired.FS, in.Policies, in.PolicyOptions...)
	var perr *policy.Error
	if errors.As(err, &perr) {
		problems := make([]plan.Problem, len(perr.Problems))
		for i, p := range perr.Problems {
			problems[i] = plan.Problem{File: p.File, Line: p.Line, Message: p.Message}
		}
		return nil, problems, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load policies: %w", err)
	}
	return engine, nil, nil
}
