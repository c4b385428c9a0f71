package manticore_test

import (
	"context"
	"fmt"

	"github.com/reconciler-dev/reconciler/agent/installers"
	"github.com/reconciler-dev/reconciler/agent/installers/manticore"
)

// searchd only reads TLS settings when it starts; with AllowRestart the
// agent restarts it, otherwise the result is RestartRequired.
func ExampleNew() {
	in := manticore.New(installers.Datastore{
		Type: "manticore", ConfigDir: "/etc/manticoresearch", Port: 9443, User: "manticore",
		AllowRestart: true, RestartCommand: []string{"systemctl", "restart", "manticore"},
	}, manticore.WithListen("10.0.4.17:9443"))
	_, err := in.Install(context.Background(), installers.Bundle{})
	fmt.Println(err)
	// Output: bundle certificate: no PEM certificate in it
}
