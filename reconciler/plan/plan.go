package plan

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/reconciler-dev/reconciler/specs"
)

// Change is what happens to an instance as a whole.
type Change string

// Changes.
const (
	Create Change = "create"
	Update Change = "update"
	Delete Change = "delete"
	None   Change = "none"
)

// Instance is the plan for one instance.
type Instance struct {
	Name      string
	File      string // fleet-relative; the observed file for a delete
	Datastore string
	Change    Change
	Fields    []Field
	// Actions are the steps a real run takes, in order. Empty for a
	// denied or held instance: neither is touched.
	Actions []Action
	Policy  policy.Verdict
	// Held says why the instance is kept at its last applied state (its
	// file is broken, its name is defined twice); empty otherwise.
	Held string

	// Desired and Observed are the two states compared; either may be nil.
	Desired, Observed *specs.Instance
}

// Denied reports whether a policy denies the instance.
func (i *Instance) Denied() bool { return len(i.Policy.Deny) > 0 }

// Problem is an input error that kept part of the fleet out of the plan: a
// broken instance file, a duplicate name, a policy that does not compile.
type Problem struct {
	File    string
	Line    int
	Column  int
	Field   string
	Message string // what is wrong and how to fix it, without the position
}

func (p Problem) String() string {
	pos := p.File
	if p.Line > 0 {
		pos += fmt.Sprintf(":%d", p.Line)
		if p.Column > 0 {
			pos += fmt.Sprintf(":%d", p.Column)
		}
	}
	return pos + ": " + p.Message
}

// ProblemsOf converts instance-file errors into plan problems.
func ProblemsOf(errs specs.ErrorList) []Problem {
	out := make([]Problem, len(errs))
	for i, e := range errs {
		out[i] = Problem{File: e.File, Line: e.Line, Column: e.Column, Field: e.Field, Message: e.Detail()}
	}
	return out
}

// Plan is the whole fleet's plan.
type Plan struct {
	Instances []Instance // sorted by name
	Fleet     policy.Verdict
	Problems  []Problem
}

// Evaluator judges desired instances against the policies; *policy.Engine
// is one. Evaluate returns one verdict per document, in order.
type Evaluator interface {
	Evaluate(ctx context.Context, docs []policy.Document) (*policy.Result, error)
}

// Options tune Compute.
type Options struct {
	// Prune deletes what an instance removed from the fleet had (its
	// certificate, its RPC key). Without it such an instance is only
	// released: the reconciler stops managing it and changes nothing.
	Prune bool
	// Known, when set, returns the verdict already reached for a desired
	// instance (the same document judged by the same policies), so that
	// Compute evaluates only the others: what a commit that changes a few
	// files costs. Fleet-scoped rules see only the documents evaluated, so
	// use it only with policies that have none.
	Known func(*specs.Instance) (policy.Verdict, bool)
}

// Compute plans desired against observed. desired is the fleet as loaded
// (its Problems become the plan's); observed is the state to change from:
// nothing for a first run, another revision's instances for a review, or
// what the agents report. eval may be nil for no policies.
func Compute(ctx context.Context, desired *specs.Fleet, observed []*specs.Instance, eval Evaluator, opts Options) (*Plan, error) {
	p := &Plan{Problems: ProblemsOf(desired.Errors)}
	verdicts := make([]policy.Verdict, len(desired.Instances))
	if eval != nil {
		var docs []policy.Document
		var at []int // the index in desired.Instances of each document
		for i, in := range desired.Instances {
			if opts.Known != nil {
				if v, ok := opts.Known(in); ok {
					verdicts[i] = v
					continue
				}
			}
			docs = append(docs, policy.Document{Name: in.Metadata.Name, File: in.File, Input: in.Raw})
			at = append(at, i)
		}
		res, err := eval.Evaluate(ctx, docs)
		if err != nil {
			return nil, fmt.Errorf("evaluate policies: %w", err)
		}
		for j, i := range at {
			verdicts[i] = res.Instances[j]
		}
		p.Fleet = res.Fleet
	}

	before := make(map[string]*specs.Instance, len(observed))
	for _, in := range observed {
		before[in.Metadata.Name] = in
	}
	p.Instances = make([]Instance, 0, len(desired.Instances))
	for i, in := range desired.Instances {
		old := before[in.Metadata.Name]
		delete(before, in.Metadata.Name)
		p.Instances = append(p.Instances, planOne(old, in, verdicts[i], opts))
	}
	for _, old := range before {
		pi := planOne(old, nil, policy.Verdict{}, opts)
		switch {
		case desired.Held(old.Metadata.Name):
			pi.Held = "its name is defined more than once"
		case desired.Broken(old.File):
			pi.Held = fmt.Sprintf("%s has errors", old.File)
		}
		if pi.Held != "" {
			pi.Change, pi.Fields, pi.Actions, pi.Desired = None, nil, nil, nil
		}
		p.Instances = append(p.Instances, pi)
	}
	slices.SortFunc(p.Instances, func(a, b Instance) int { return strings.Compare(a.Name, b.Name) })
	return p, nil
}

// Against returns the instance's plan made again from the same desired
// state and verdict against observed, in place of i.Observed: what is
// left to do once the desired state has been applied, without planning
// the fleet. A held instance stays held, with observed as its state.
// i.Desired and observed must not both be nil.
func (i *Instance) Against(observed *specs.Instance, opts Options) Instance {
	if i.Held != "" {
		out := *i
		out.Observed = observed
		return out
	}
	return planOne(observed, i.Desired, i.Policy, opts)
}

// planOne plans one instance; old or desired may be nil, not both.
func planOne(old, desired *specs.Instance, v policy.Verdict, opts Options) Instance {
	any := desired
	if any == nil {
		any = old
	}
	pi := Instance{
		Name:      any.Metadata.Name,
		File:      any.File,
		Datastore: any.Spec.Datastore.Type,
		Policy:    v,
		Desired:   desired,
		Observed:  old,
	}
	if old == nil || desired == nil || !sameState(old, desired) {
		pi.Fields = diffFields(flatten(old), flatten(desired))
	}
	switch {
	case old == nil:
		pi.Change = Create
	case desired == nil:
		pi.Change = Delete
	case len(pi.Fields) > 0:
		pi.Change = Update
	default:
		pi.Change = None
	}
	if !pi.Denied() {
		pi.Actions = actions(old, desired, opts)
	}
	return pi
}
