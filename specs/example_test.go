package specs_test

import (
	"fmt"

	"github.com/reconciler-dev/reconciler/specs"
)

func ExampleParse() {
	_, err := specs.Parse("instances/orders.yaml", []byte(`apiVersion: reconciler/v1
kind: Instance
metadata: {name: orders-db}
spec:
  datastore: {type: postgres}
  hosts: [orders-db.db.internal]
  ssl: enabled
`), specs.DefaultDefaults())
	fmt.Println(err)
	// Output:
	// instances/orders.yaml:5:21: spec.datastore.type: "postgres" is not a valid value; did you mean "postgresql"? use one of: mysql, mariadb, postgresql, mongodb, cassandra, manticore
}
