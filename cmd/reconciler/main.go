// Command reconciler keeps a fleet of database instances encrypted, as
// declared in a git repository and allowed by Rego policies.
//
// This package only wires: flags, configuration and construction. The work
// happens in the packages it calls.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode is returned by a command whose result is an exit status rather
// than a failure: diff's 2 (changes) and 3 (denied).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run executes the command line and returns the process's exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintf(stderr, "reconciler: %v\n", err)
	return 1
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "reconciler",
		Short: "Keep a fleet of databases encrypted, by pull request",
		Long: `reconciler reads the desired state of database instances (MySQL, MariaDB,
PostgreSQL, MongoDB, Cassandra, Manticore) from YAML files in a git
repository, checks them against Rego policies, plans what it takes to make
every instance serve TLS, and (as 'reconciler run') drives a guest agent on
each host until the datastore really does.

Start with 'make demo', or 'reconciler diff' in a fleet repository.
'reconciler run' is the daemon, 'reconciler agent' the guest agent.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newAgentCommand(), newDiffCommand(), newInstanceCommand(), newKEKCommand(), newKeysCommand(), newPolicyCommand(), newRunCommand(), newSchemaCommand(), newSSLCommand(), newVaultCommand(), newVersionCommand())
	return root
}
