package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/config"
)

func readAllLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, err
	}
	if len(b) > 1<<20 {
		return nil, fmt.Errorf("input larger than 1 MiB")
	}
	return b, nil
}

func newProvisionerCmd() *cobra.Command {
	var of operatorFlags
	cmd := &cobra.Command{
		Use:   "provisioner",
		Short: "Manage provisioners (named ACME endpoints); changes take effect when the CA restarts",
	}
	of.register(cmd)

	var p config.Provisioner
	var lifetime, maxLifetime string
	addCmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a provisioner to the configuration (effective after the CA restarts)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.Name = args[0]
			p.Type = "acme"
			for _, d := range []struct {
				s   string
				dst *config.Duration
				n   string
			}{{lifetime, &p.DefaultLifetime, "lifetime"}, {maxLifetime, &p.MaxLifetime, "max-lifetime"}} {
				if d.s == "" {
					continue
				}
				v, err := config.ParseDuration(d.s)
				if err != nil {
					return &exitError{2, fmt.Errorf("--%s: %w", d.n, err)}
				}
				*d.dst = config.Duration(v)
			}
			api, done, err := of.api(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			v, err := api.AddProvisioner(cmd.Context(), p)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added provisioner %q: %s\n(restart the CA to serve it; a local, unsigned policy bundle directory got an empty rule layer for it in data.json; a signed or packed bundle, or one from a URL, needs the entry policyca.provisioners[%q], added and signed by its owner)\n", v.Name, v.DirectoryURL, v.Name)
			return nil
		},
	}
	f := addCmd.Flags()
	f.BoolVar(&p.RequireEAB, "require-eab", false, "accounts must register with an External Account Binding key")
	f.StringVar(&lifetime, "lifetime", "", "default certificate lifetime (default 24h)")
	f.StringVar(&maxLifetime, "max-lifetime", "", "longest lifetime a client may ask for (default: the lifetime)")
	f.IntVar(&p.Validation.HTTP01Port, "http01-port", 0, "port for http-01 validation (default 80)")
	f.IntVar(&p.Validation.TLSALPN01Port, "tlsalpn01-port", 0, "port for tls-alpn-01 validation (default 443)")
	f.StringSliceVar(&p.Validation.Resolvers, "resolver", nil, "DNS server host:port for validation (repeatable)")

	var asJSON bool
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List the configured provisioners",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			api, done, err := of.api(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ps, err := api.ListProvisioners(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(ps)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tTYPE\tREQUIRE EAB\tLIFETIME\tMAX LIFETIME\tDIRECTORY")
			restart := false
			for _, p := range ps {
				name := p.Name
				if p.Served != nil && !*p.Served {
					name += " (not served yet)"
					restart = true
				}
				fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%s\n", name, p.Type, p.RequireEAB, p.DefaultLifetime, p.MaxLifetime, p.DirectoryURL)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if restart {
				fmt.Fprintln(cmd.OutOrStdout(), "\nprovisioners marked \"not served yet\" were added to the configuration after the CA started: restart it to serve them")
			}
			return nil
		},
	}
	listCmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(addCmd, listCmd)
	return cmd
}
