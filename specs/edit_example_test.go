package specs_test

import (
	"fmt"

	"github.com/reconciler-dev/reconciler/specs"
)

func ExampleSetSSL() {
	src := []byte(`apiVersion: reconciler/v1
kind: Instance
metadata: {name: orders-db}
spec:
  datastore: {type: mysql}
  hosts: [orders-db.db.internal]
  ssl: "disabled"   # until the audit
`)
	out, changed, err := specs.SetSSL(src, "orders-db", true)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(changed)
	fmt.Print(string(out))
	// Output:
	// true
	// apiVersion: reconciler/v1
	// kind: Instance
	// metadata: {name: orders-db}
	// spec:
	//   datastore: {type: mysql}
	//   hosts: [orders-db.db.internal]
	//   ssl: "enabled"   # until the audit
}
