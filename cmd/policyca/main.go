// Command policyca is the one policyca binary: `init`, `ca` and the
// operator subcommands. It only wires packages together.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "policyca:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "policyca",
		Short:         "An ACME certificate authority for internal networks, with issuance decided by Rego policy",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newInitCmd(), newCACmd(), newEABCmd(), newProvisionerCmd(), newDecisionsCmd(), newPolicyCmd(), newBenchCmd(), newDBCmd(), newVersionCmd())
	root.AddCommand(newRACmd())
	return root
}

var version = "dev"

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "policyca", version)
		},
	}
}
