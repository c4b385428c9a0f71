package main

import (
	"errors"
	"fmt"
	"os"
	"path"
	"regexp"
	"time"

	"github.com/reconciler-dev/reconciler/policy"
	"github.com/spf13/cobra"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with Rego policies",
	}
	cmd.AddCommand(newPolicyTestCommand())
	return cmd
}

func newPolicyTestCommand() *cobra.Command {
	var run string
	cmd := &cobra.Command{
		Use:   "test [DIR]",
		Short: "Run the Rego unit tests (*_test.rego) of a policy directory",
		Long: `Run every test rule (test_*) of the *_test.rego files under DIR (default
policies), with the data files beside the policies loaded. Prints PASS or
FAIL per test, with file:line for failures, and exits 1 if any test fails.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := "policies"
			if len(args) == 1 {
				dir = args[0]
			}
			var opts []policy.TestOption
			if run != "" {
				re, err := regexp.Compile(run)
				if err != nil {
					return fmt.Errorf("parse --run: %w", err)
				}
				opts = append(opts, policy.WithRunFilter(re))
			}
			results, err := policy.Test(cmd.Context(), os.DirFS(dir), ".", opts...)
			var perr *policy.Error
			if errors.As(err, &perr) {
				for i := range perr.Problems {
					perr.Problems[i].File = path.Join(dir, perr.Problems[i].File)
				}
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			passed, failed := 0, 0
			for _, r := range results {
				name := "data." + r.Package + "." + r.Name
				switch r.Status {
				case policy.TestPass:
					passed++
					fmt.Fprintf(out, "PASS  %s (%s)\n", name, r.Duration.Round(time.Microsecond))
				case policy.TestSkip:
					fmt.Fprintf(out, "SKIP  %s\n", name)
				default:
					failed++
					fmt.Fprintf(out, "%-4s  %s:%d: %s\n", r.Status, path.Join(dir, r.File), r.Line, name)
					if r.Message != "" {
						fmt.Fprintf(out, "      %s\n", r.Message)
					}
				}
				if r.Output != "" {
					fmt.Fprintf(out, "      %s\n", r.Output)
				}
			}
			fmt.Fprintf(out, "%d passed, %d failed\n", passed, failed)
			if failed > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&run, "run", "", "run only the tests whose name matches this regular expression")
	return cmd
}
