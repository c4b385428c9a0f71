package output

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/reconciler-dev/reconciler/reconciler/plan"
	"github.com/reconciler-dev/reconciler/specs"
)

func examplePlan(t *testing.T) Report {
	t.Helper()
	fsys := fstest.MapFS{"instances/a.yaml": {Data: []byte(`apiVersion: reconciler/v1
kind: Instance
metadata: {name: orders-db}
spec:
  datastore: {type: mysql}
  hosts: [orders-db.db.internal]
  ssl: enabled
`)}}
	f, err := specs.Load(context.Background(), fsys, "instances")
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Compute(context.Background(), f, nil, nil, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return Report{Plan: p, Fleet: "fleet", Revision: "worktree"}
}

func TestTextColoursOnlyWhenAsked(t *testing.T) {
	for _, color := range []bool{false, true} {
		var b bytes.Buffer
		if err := Text(&b, examplePlan(t), color); err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(b.String(), "\x1b["); got != color {
			t.Errorf("color=%v: ANSI escapes present = %v\n%q", color, got, b.String())
		}
		if !strings.Contains(b.String(), "orders-db") || !strings.Contains(b.String(), "1 to create") {
			t.Errorf("color=%v: output lacks the instance or the summary:\n%s", color, b.String())
		}
	}
}

func TestMarkdownEscapesTableCells(t *testing.T) {
	if got, want := cell("a|b <c>\nd"), `a\|b &lt;c&gt; d`; got != want {
		t.Errorf("cell = %q, want %q", got, want)
	}
}

func TestJSONIsValidForAnyPlanSize(t *testing.T) {
	one := examplePlan(t)
	many := examplePlan(t)
	for range 1200 { // more than one marshalling batch
		many.Plan.Instances = append(many.Plan.Instances, one.Plan.Instances[0])
	}
	for name, r := range map[string]Report{"empty": {Plan: &plan.Plan{}}, "one": one, "many": many} {
		var b bytes.Buffer
		if err := JSON(&b, r); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Instances []map[string]any
			Errors    []any
			Policy    map[string][]any
		}
		if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
			t.Fatalf("%s: invalid JSON: %v\n%s", name, err, b.String())
		}
		if len(doc.Instances) != len(r.Plan.Instances) || doc.Errors == nil || doc.Policy["deny"] == nil {
			t.Errorf("%s: %d instances (want %d), errors %v, policy %v: lists must be present and complete", name, len(doc.Instances), len(r.Plan.Instances), doc.Errors, doc.Policy)
		}
	}
}
