package reconciler_test

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/reconciler-dev/reconciler/reconciler"
	"github.com/reconciler-dev/reconciler/sources"
	"github.com/reconciler-dev/reconciler/specs"
)

func plannerInstance(name, ssl string) *fstest.MapFile {
	return &fstest.MapFile{Data: fmt.Appendf(nil, `apiVersion: reconciler/v1
kind: Instance
metadata: {name: %s}
spec:
  datastore: {type: postgresql, version: "15"}
  hosts: [db.example.com]
  ssl: %s
`, name, ssl)}
}

const denyPlaintext = `package main
import rego.v1
deny contains msg if {
	input.spec.ssl == "disabled"
	startswith(input.metadata.name, "prod-")
	msg := sprintf("%s: production needs ssl", [input.metadata.name])
}
`

const fleetRule = `package fleet
import rego.v1
warn contains "more than two instances" if count(input) > 2
`

// TestPlannerIsDiff checks that every plan of a sequence of revisions,
// made from the files each changed, is the plan Diff makes of the
// revision whole; and that what is outside the instances (a policy) or a
// fleet-scoped rule has everything read again.
func TestPlannerIsDiff(t *testing.T) {
	fleet := fstest.MapFS{
		"instances/a.yaml":   plannerInstance("prod-a", "enabled"),
		"instances/b.yaml":   plannerInstance("prod-b", "enabled"),
		"instances/c.yaml":   plannerInstance("dev-c", "disabled"),
		"policies/main.rego": {Data: []byte(denyPlaintext)},
	}
	steps := []struct {
		name    string
		edit    map[string]*fstest.MapFile // nil value: deleted
		unknown bool                       // changed paths not known
	}{
		{"first revision", nil, true},
		{"one file flips ssl and is denied", map[string]*fstest.MapFile{"instances/b.yaml": plannerInstance("prod-b", "disabled")}, false},
		{"a file added", map[string]*fstest.MapFile{"instances/d.yaml": plannerInstance("prod-d", "disabled")}, false},
		{"a file deleted", map[string]*fstest.MapFile{"instances/c.yaml": nil}, false},
		{"a duplicate", map[string]*fstest.MapFile{"instances/e.yaml": plannerInstance("prod-a", "disabled")}, false},
		{"the policy changes", map[string]*fstest.MapFile{"policies/main.rego": {Data: []byte("package main\nimport rego.v1\nwarn contains \"always\" if true\n")}}, false},
		{"a fleet rule appears", map[string]*fstest.MapFile{"policies/fleet.rego": {Data: []byte(fleetRule)}}, false},
		{"then an instance changes under it", map[string]*fstest.MapFile{"instances/a.yaml": plannerInstance("prod-a", "disabled")}, false},
		{"nothing changed", map[string]*fstest.MapFile{}, false},
	}
	in := reconciler.DiffInput{Instances: "instances", Policies: "policies", Defaults: specs.DefaultDefaults()}
	pl := reconciler.NewPlanner(in)
	ctx := context.Background()
	var observed []*specs.Instance
	for i, st := range steps {
		var changed []string
		if !st.unknown {
			changed = []string{}
		}
		for path, f := range st.edit {
			if f == nil {
				delete(fleet, path)
			} else {
				fleet[path] = f
			}
			changed = append(changed, path)
		}
		snap := &sources.Snapshot{Revision: fmt.Sprint(i), FS: clone(fleet)}
		got, err := pl.Plan(ctx, snap, observed, changed)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		full := in
		full.Desired, full.Observed = snap, observed
		want, err := reconciler.Diff(ctx, full)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(specs.Instance{})); diff != "" {
			t.Errorf("%s: the planner's plan differs from Diff's (-diff +planner):\n%s", st.name, diff)
		}
		// What was planned is applied, as the daemon would.
		observed = nil
		for _, pi := range got.Instances {
			if pi.Desired != nil && !pi.Denied() && pi.Held == "" {
				observed = append(observed, pi.Desired)
			}
		}
	}
}

func clone(m fstest.MapFS) fstest.MapFS {
	out := fstest.MapFS{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
