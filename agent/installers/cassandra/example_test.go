package cassandra_test

import (
	"context"
	"fmt"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/installers/cassandra"
)

// Cassandra 4.1 gets PEM files; nodetool reloadssl applies a rotation at
// once instead of within Cassandra's 10-minute store check.
func ExampleNew() {
	in := cassandra.New(installers.Datastore{
		Type: "cassandra", Version: "4.1", ConfigDir: "/etc/cassandra", User: "cassandra",
		ReloadCommand: []string{"nodetool", "reloadssl"},
	})
	_, err := in.Install(context.Background(), installers.Bundle{})
	fmt.Println(err)
	// Output: bundle certificate: no PEM certificate in it
}
