package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/admin"
)

func newEABCmd() *cobra.Command {
	var of operatorFlags
	cmd := &cobra.Command{
		Use:   "eab",
		Short: "Manage External Account Binding keys (one ACME account per key, each with its own policy)",
	}
	of.register(cmd)

	var add admin.AddEABRequest
	var policyFile string
	var asJSON bool
	addCmd := &cobra.Command{
		Use:   "add",
		Short: "Create a key; prints the key id and the HMAC key once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if policyFile != "" {
				b, err := os.ReadFile(policyFile)
				if err != nil {
					return err
				}
				add.Policy = b
			}
			api, done, err := of.api(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			k, err := api.AddEAB(cmd.Context(), add)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(k)
			}
			fmt.Fprintf(out, "EAB key for %q on provisioner %q (shown once; store it now):\n", k.Reference, k.Provisioner)
			fmt.Fprintf(out, "  kid:  %s\n  hmac: %s\n\n", k.KID, k.HMAC)
			fmt.Fprintf(out, "certbot:\n  certbot register --server %s --eab-kid %s --eab-hmac-key %s --agree-tos --register-unsafely-without-email\n", k.DirectoryURL, k.KID, k.HMAC)
			fmt.Fprintf(out, "lego:\n  lego --server %s --eab --kid %s --hmac %s --email admin@%s.internal --accept-tos --http -d NAME run\n", k.DirectoryURL, k.KID, k.HMAC, k.Reference)
			fmt.Fprintf(out, "(clients must trust the CA's root: REQUESTS_CA_BUNDLE for certbot, LEGO_CA_CERTIFICATES for lego)\n")
			return nil
		},
	}
	addCmd.Flags().StringVar(&add.Provisioner, "provisioner", "", "provisioner the key belongs to (required)")
	addCmd.Flags().StringVar(&add.Reference, "reference", "", "your name for the machine or team (required)")
	addCmd.Flags().StringVar(&policyFile, "policy", "", "JSON file with the account's name rules")
	addCmd.Flags().StringVar(&add.Expires, "expires", "", "the key can bind an account only within this duration (e.g. 7d)")
	addCmd.Flags().BoolVar(&asJSON, "json", false, `print {"kid": …, "hmac": …} for scripts`)
	addCmd.MarkFlagRequired("provisioner")
	addCmd.MarkFlagRequired("reference")

	var listProv string
	var listJSON bool
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List keys (never their secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, done, err := of.api(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ks, err := api.ListEAB(cmd.Context(), listProv)
			if err != nil {
				return err
			}
			if listJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(ks)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KID\tPROVISIONER\tREFERENCE\tCREATED\tSTATE\tBOUND ACCOUNT\tBOUND AT\tPOLICY")
			for _, k := range ks {
				state := "unbound"
				switch {
				case k.Revoked != nil:
					state = "revoked"
				case k.BoundAccount != "":
					state = "bound"
				case k.Expires != nil && !time.Now().Before(*k.Expires):
					state = "expired"
				}
				boundAt := "-"
				if k.BoundAt != nil {
					boundAt = k.BoundAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.KID, k.Provisioner, k.Reference,
					k.Created.Format(time.RFC3339), state, dash(k.BoundAccount), boundAt, k.PolicySummary)
			}
			return tw.Flush()
		},
	}
	listCmd.Flags().StringVar(&listProv, "provisioner", "", "only this provisioner's keys")
	listCmd.Flags().BoolVar(&listJSON, "json", false, "print JSON")

	var deact bool
	revokeCmd := &cobra.Command{
		Use:   "revoke KID",
		Short: "Revoke a key: it can never bind an account",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			api, done, err := of.api(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			k, err := api.RevokeEAB(cmd.Context(), args[0], deact)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s", k.KID)
			if deact && k.BoundAccount != "" {
				fmt.Fprintf(cmd.OutOrStdout(), "; account %s deactivated", k.BoundAccount)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	revokeCmd.Flags().BoolVar(&deact, "deactivate-account", false, "also deactivate the account the key bound")

	policyCmd := &cobra.Command{Use: "policy", Short: "Account policies of EAB keys"}
	setCmd := &cobra.Command{
		Use:   "set KID FILE",
		Short: "Replace the account policy of a key (effective for the next order); FILE '-' reads stdin, an empty file removes it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var b []byte
			var err error
			if args[1] == "-" {
				b, err = readAllLimited(os.Stdin)
			} else {
				b, err = os.ReadFile(args[1])
			}
			if err != nil {
				return err
			}
			api, done, err := of.api(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			k, err := api.SetEABPolicy(cmd.Context(), args[0], b)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy of %s: %s\n", k.KID, k.PolicySummary)
			return nil
		},
	}
	policyCmd.AddCommand(setCmd)
	cmd.AddCommand(addCmd, listCmd, revokeCmd, policyCmd)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
