package plan

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/reconciler-dev/reconciler/specs"
)

// BenchmarkCompute10000 plans a one-instance change in a 10,000-instance
// fleet: the merge-request shape.
func BenchmarkCompute10000(b *testing.B) {
	base, desired := fstest.MapFS{}, fstest.MapFS{}
	for i := range 10000 {
		name := fmt.Sprintf("db-%05d", i)
		base["instances/"+name+".yaml"] = &fstest.MapFile{Data: []byte(instance(name))}
		desired["instances/"+name+".yaml"] = base["instances/"+name+".yaml"]
	}
	desired["instances/db-00042.yaml"] = &fstest.MapFile{Data: []byte(instance("db-00042", "ssl: enabled", "ssl: disabled"))}
	ctx := context.Background()
	old, err := specs.Load(ctx, base, "instances")
	if err != nil {
		b.Fatal(err)
	}
	want, err := specs.Load(ctx, desired, "instances")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p, err := Compute(ctx, want, old.Instances, nil, Options{})
		if err != nil || p.Summary().Update != 1 {
			b.Fatalf("plan: %v, %+v", err, p.Summary())
		}
	}
}
