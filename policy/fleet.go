package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Keys by which a fleet-scope result names the instances it concerns.
const (
	instanceKey  = "instance"
	instancesKey = "instances"
)

// evaluateFleet evaluates the fleet namespace once with input
// {"instances": [every document's input, in docs order]} and attributes
// each deny and warn message that names instances to their verdicts.
func (e *Engine) evaluateFleet(ctx context.Context, docs []Document, inputs []ast.Value, res *Result) error {
	ns := e.fleet.name
	items := make([]*ast.Term, len(docs))
	byName := make(map[string][]int, len(docs))
	for i, d := range docs {
		items[i] = ast.NewTerm(inputs[i])
		byName[d.Name] = append(byName[d.Name], i)
	}
	input := ast.NewObject(ast.Item(ast.InternedTerm(instancesKey), ast.ArrayTerm(items...)))
	v, err := e.eval(ctx, e.fleet, input, "")
	if err != nil {
		return &EvalError{Namespace: ns, Err: err}
	}

	attribute := func(msgs []Message, fleet *[]Message, instance func(*Verdict) *[]Message) error {
		for _, m := range msgs {
			targets, err := targets(m, byName)
			if err != nil {
				return &EvalError{Namespace: ns, Err: err}
			}
			if len(targets) == 0 {
				*fleet = append(*fleet, m)
			}
			for _, i := range targets {
				list := instance(&res.Instances[i])
				*list = append(*list, m)
			}
		}
		return nil
	}
	if err := attribute(v.Deny, &res.Fleet.Deny, func(v *Verdict) *[]Message { return &v.Deny }); err != nil {
		return err
	}
	if err := attribute(v.Warn, &res.Fleet.Warn, func(v *Verdict) *[]Message { return &v.Warn }); err != nil {
		return err
	}
	// An exception excepts a rule for the whole fleet: it concerns no one
	// instance.
	res.Fleet.Exceptions = append(res.Fleet.Exceptions, v.Exceptions...)
	return nil
}

// targets returns the indices of the documents a fleet-scope message names
// with its "instance" (a name) or "instances" (an array of names) key,
// sorted and without repeats. Names of no document are skipped, so a
// message that names only unknown instances stays a fleet-wide one.
func targets(m Message, byName map[string][]int) ([]int, error) {
	var names []string
	if v, ok := m.Metadata[instanceKey]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("rule %s: result %q: %q must be an instance name (a string), not %s", m.Rule, m.Msg, instanceKey, compact(v))
		}
		names = append(names, s)
	}
	if v, ok := m.Metadata[instancesKey]; ok {
		list, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("rule %s: result %q: %q must be an array of instance names, not %s", m.Rule, m.Msg, instancesKey, compact(v))
		}
		for _, e := range list {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("rule %s: result %q: %q must be an array of instance names, not %s", m.Rule, m.Msg, instancesKey, compact(v))
			}
			names = append(names, s)
		}
	}
	var idx []int
	for _, n := range names {
		idx = append(idx, byName[n]...)
	}
	slices.Sort(idx)
	return slices.Compact(idx), nil
}
