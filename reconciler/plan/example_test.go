package plan_test

import (
	"context"
	"fmt"
	"testing/fstest"

	"github.com/reconciler-dev/reconciler/reconciler/plan"
	"github.com/reconciler-dev/reconciler/specs"
)

func ExampleCompute() {
	fsys := fstest.MapFS{"instances/orders.yaml": {Data: []byte(`apiVersion: reconciler/v1
kind: Instance
metadata: {name: orders-db}
spec:
  datastore: {type: postgresql, version: "16"}
  hosts: [orders-db.db.internal]
  ssl: enabled
`)}}
	desired, err := specs.Load(context.Background(), fsys, "instances")
	if err != nil {
		panic(err)
	}
	p, err := plan.Compute(context.Background(), desired, nil, nil, plan.Options{})
	if err != nil {
		panic(err)
	}
	for _, in := range p.Instances {
		fmt.Println(in.Name, in.Change, in.Actions)
	}
	fmt.Println("exit code", p.ExitCode())
	// Output:
	// orders-db create [issue-certificate install-ssl reload-datastore verify-tls]
	// exit code 2
}
