package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/core"
)

func newDecisionsCmd() *cobra.Command {
	var of operatorFlags
	cmd := &cobra.Command{Use: "decisions", Short: "The policy decision log"}
	of.register(cmd)
	var f core.DecisionFilter
	var since string
	var asJSON bool
	listCmd := &cobra.Command{
		Use:   "list",
		Short: "List decisions, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if since != "" {
				if t, err := time.Parse(time.RFC3339, since); err == nil {
					f.Since = t
				} else if d, err := config.ParseDuration(since); err == nil {
					f.Since = time.Now().Add(-d)
				} else {
					return &exitError{2, fmt.Errorf("--since: %q is neither an RFC 3339 time nor a duration", since)}
				}
			}
			api, done, err := of.api(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ds, err := api.ListDecisions(cmd.Context(), f)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(ds)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tSTAGE\tPROVISIONER\tACCOUNT\tALLOW\tIDENTIFIERS\tREVISION\tEVAL\tVIOLATIONS")
			for _, d := range ds {
				var ids, vs []string
				for _, id := range d.Identifiers {
					ids = append(ids, id.Value)
				}
				for _, v := range d.Violations {
					vs = append(vs, v.Layer+": "+v.Reason)
				}
				if d.Error != "" {
					vs = append(vs, "error: "+d.Error)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\t%s\n", d.Time.Format(time.RFC3339), d.Stage, d.Provisioner,
					dash(d.Account), d.Allow, strings.Join(ids, ","), d.Revision, d.EvalTime, strings.Join(vs, "; "))
			}
			return tw.Flush()
		},
	}
	fl := listCmd.Flags()
	fl.BoolVar(&f.DeniedOnly, "denied", false, "only refusals")
	fl.StringVar(&since, "since", "", "only decisions since this RFC 3339 time or this long ago (e.g. 1h, 7d)")
	fl.StringVar(&f.AccountID, "account", "", "only this account's decisions")
	fl.IntVar(&f.Limit, "limit", 100, "at most this many")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(listCmd)
	return cmd
}
