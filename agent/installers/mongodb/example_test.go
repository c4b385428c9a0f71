package mongodb_test

import (
	"context"
	"fmt"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/installers/mongodb"
)

// The agent builds the installer from its datastore configuration; a
// rotation on MongoDB 5.0+ runs the operator's rotateCertificates command.
func ExampleNew() {
	in := mongodb.New(installers.Datastore{
		Type: "mongodb", Version: "7.0", ConfigDir: "/etc/mongodb", User: "mongodb",
		ReloadCommand: []string{"mongosh", "--quiet", "--tls", "--eval", "db.adminCommand({rotateCertificates: 1})"},
	}, mongodb.WithConfigFile("/etc/mongod.conf"))
	_, err := in.Install(context.Background(), installers.Bundle{})
	fmt.Println(err)
	// Output: bundle certificate: no PEM certificate in it
}
