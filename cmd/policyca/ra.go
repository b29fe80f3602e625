package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/internal/logbuf"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/ra"
	"github.com/policyca/policyca/raapi"
	"github.com/policyca/policyca/server"
	"github.com/policyca/policyca/store"
)

// newRACmd is `policyca ra`: run a registration authority (DESIGN.md shape
// 2), enrol one, and, on the CA host, manage the registry of RAs.
func newRACmd() *cobra.Command {
	var stateDir, cfgPath string
	cmd := &cobra.Command{
		Use:   "ra",
		Short: "Run a registration authority (ACME inside an internal network, relaying to the CA); manage RAs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgPath == "" {
				cfgPath = filepath.Join(stateDir, ra.ConfigFile)
			}
			c, err := ra.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			// Closed last: what is logged while shutting down is written.
			lw := logbuf.New(os.Stderr, 0)
			defer lw.Close()
			log := server.NewLogger(c.Log, lw)
			tuneGC(log)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			n, err := ra.NewNode(ctx, c, log)
			if err != nil {
				return fmt.Errorf("starting the RA from %s: %w", cfgPath, err)
			}
			defer n.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "policyca RA %q serving on %s, relaying to %s\n", c.Name, c.Listen, c.CAURL)
			for _, p := range c.Provisioners {
				fmt.Fprintf(cmd.OutOrStdout(), "  ACME directory: %s/acme/%s/directory\n", c.BaseURL(), p.Name)
			}
			return n.Run(ctx)
		},
	}
	cmd.Flags().StringVar(&stateDir, "state", ".policyca-ra", "state directory written by 'ra enroll'")
	cmd.Flags().StringVar(&cfgPath, "config", "", "RA configuration file (default <state>/ra.json)")
	cmd.AddCommand(newRAEnrollCmd(), newRATokenCmd(), newRAListCmd(), newRASetCmd("disable", true), newRASetCmd("enable", false))
	return cmd
}

func newRAEnrollCmd() *cobra.Command {
	var o ra.EnrollOptions
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "enroll",
		Short: "Enrol this host as an RA with a token from 'policyca ra token create'",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Validation.Timeout = config.Duration(timeout)
			c, err := ra.Enroll(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enrolled as RA %q with the CA at %s\nrun: policyca ra --state %s\n", c.Name, c.CAURL, o.StateDir)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Token, "token", "", "enrolment token (required)")
	f.StringVar(&o.StateDir, "state", ".policyca-ra", "state directory to create")
	f.StringVar(&o.Listen, "listen", "", "address of the RA's ACME listener, host:port (required)")
	f.StringVar(&o.ExternalURL, "external-url", "", "base URL clients use (default https://<listen>)")
	f.StringVar(&o.KeyURI, "key", "", "client key URI, e.g. a pkcs11: URI (default: a new software key in the state directory)")
	f.StringSliceVar(&o.ListenerNames, "listener-name", nil, "names or IPs of the listener certificate (default: the listen host)")
	f.StringSliceVar(&o.Validation.Resolvers, "resolver", nil, "DNS server (host:port) for validation; repeatable (default: the system's)")
	f.IntVar(&o.Validation.HTTP01Port, "http01-port", 80, "port http-01 validation connects to")
	f.IntVar(&o.Validation.TLSALPN01Port, "tlsalpn01-port", 443, "port tls-alpn-01 validation connects to")
	f.DurationVar(&timeout, "validation-timeout", 10*time.Second, "bound on one challenge validation")
	cmd.MarkFlagRequired("token")
	cmd.MarkFlagRequired("listen")
	return cmd
}

// caFlags select the CA's state directory for registry commands (run on
// the CA host).
type caFlags struct{ state, config string }

func (f *caFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.state, "state", ".policyca", "state directory of the CA")
	cmd.Flags().StringVar(&f.config, "config", "", "CA configuration file (default <state>/policyca.json)")
}

func (f *caFlags) open(ctx context.Context) (*config.Config, func(), store.Store, error) {
	c, _, err := loadConfig(f.state, f.config)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := server.OpenStore(ctx, c)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, func() { st.Close() }, st, nil
}

func newRATokenCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Enrolment tokens (run on the CA host)"}
	var cf caFlags
	var name, caURL string
	var provs []string
	expires := raapi.DefaultTokenLifetime
	var asJSON bool
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a one-time enrolment token for RA NAME; prints it once",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, done, st, err := cf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if c.RAAPI == nil {
				return errors.New("the RA API is not configured on this CA (ra_api in the configuration)")
			}
			roots, err := pki.ReadPEMCerts(c.Path(c.Issuer.Root))
			if err != nil {
				return err
			}
			var known []string
			for _, p := range c.Provisioners {
				known = append(known, p.Name)
			}
			if len(provs) == 0 {
				provs = known[:1]
			}
			if caURL == "" {
				caURL = c.BaseURL()
			}
			tok, rec, err := raapi.CreateToken(cmd.Context(), st, raapi.TokenOptions{
				Name: name, Provisioners: provs, Known: known, Lifetime: expires, CAURL: caURL, Root: roots[0],
			})
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(map[string]any{"token": tok.String(), "name": name,
					"provisioners": rec.Provisioners, "expires": rec.ExpiresAt, "ca_url": caURL})
			}
			fmt.Fprintf(out, "enrolment token for RA %q (provisioners %v), valid once until %s:\n\n%s\n\n", name,
				rec.Provisioners, rec.ExpiresAt.Format(time.RFC3339), tok.String())
			fmt.Fprintf(out, "on the RA host:\n  policyca ra enroll --token TOKEN --state /var/lib/policyca-ra --listen HOST:PORT\n  policyca ra --state /var/lib/policyca-ra\n")
			return nil
		},
	}
	cf.register(create)
	create.Flags().StringVar(&name, "name", "", "the RA's name (required)")
	create.Flags().StringSliceVar(&provs, "provisioner", nil, "provisioner the RA may serve; repeatable (default: the first one)")
	create.Flags().Var((*dayDuration)(&expires), "expires", "the token is redeemable within this duration (e.g. 30m, 24h, 7d)")
	create.Flags().StringVar(&caURL, "ca-url", "", "the CA's URL as the RA reaches it (default: the configured external URL)")
	create.Flags().BoolVar(&asJSON, "json", false, "print JSON for scripts")
	create.MarkFlagRequired("name")
	cmd.AddCommand(create)
	return cmd
}

func newRAListCmd() *cobra.Command {
	var cf caFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the RAs known to this CA",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, done, st, err := cf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			ras, err := st.ListRAs(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(ras)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTATE\tPROVISIONERS\tENROLLED\tCERT SERIAL\tCERT EXPIRES")
			for _, r := range ras {
				state := "enabled"
				if !r.DisabledAt.IsZero() {
					state = "disabled since " + r.DisabledAt.Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\t%s\n", r.Name, state, r.Provisioners, r.EnrolledAt.Format(time.RFC3339),
					r.CertSerial, r.CertNotAfter.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func newRASetCmd(verb string, disable bool) *cobra.Command {
	var cf caFlags
	short := "Enable RA NAME again"
	if disable {
		short = "Disable RA NAME: its requests are refused at once, whatever certificate it holds"
	}
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, done, st, err := cf.open(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if _, err := raapi.SetDisabled(cmd.Context(), st, args[0], disable); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "RA %s %sd\n", args[0], verb)
			return nil
		},
	}
	cf.register(cmd)
	return cmd
}

// dayDuration is a duration flag in the configuration's syntax: Go's
// ("36h", "90m") and days ("7d").
type dayDuration time.Duration

func (d *dayDuration) String() string { return time.Duration(*d).String() }
func (d *dayDuration) Type() string   { return "duration" }
func (d *dayDuration) Set(s string) error {
	v, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	if v <= 0 {
		return fmt.Errorf("duration %q is not positive", s)
	}
	*d = dayDuration(v)
	return nil
}
