package main

import (
	"github.com/reconciler-dev/reconciler/specs"
	"github.com/spf13/cobra"
)

func newSchemaCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of instance files, for editors",
		Long: `Print the JSON Schema (draft 2020-12) of one instance document.

Point your editor's YAML support at it, for example with a modeline at the
top of each instance file:

  # yaml-language-server: $schema=./instance.schema.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(specs.JSONSchema())
			return err
		},
	}
}
