package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/pki"
)

func newInitCmd() *cobra.Command {
	var (
		o                            bootstrap.Options
		rootKey, intKey              string
		rootValidity, intValidity    string
		defaultLifetime, maxLifetime string
		asJSON                       bool
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialise a new CA in a state directory (keys, certificates, config, database)",
		Long: `init creates a root and an intermediate CA with software keys, a TLS
certificate for the CA's own listener issued by the intermediate, a
configuration file with one ACME provisioner named "acme", and the database
location. Then "policyca ca --state DIR" serves it with no other step.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.RootKey = pki.KeySpec(rootKey)
			o.IntermediateKey = pki.KeySpec(intKey)
			var err error
			for _, d := range []struct {
				s   string
				dst *time.Duration
				n   string
			}{{rootValidity, &o.RootValidity, "root-validity"}, {intValidity, &o.IntermediateValidity, "intermediate-validity"},
				{defaultLifetime, &o.DefaultLifetime, "default-lifetime"}, {maxLifetime, &o.MaxLifetime, "max-lifetime"}} {
				if d.s == "" {
					continue
				}
				if *d.dst, err = config.ParseDuration(d.s); err != nil {
					return &exitError{2, fmt.Errorf("--%s: %w", d.n, err)}
				}
			}
			res, err := bootstrap.Init(o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			fmt.Fprintf(out, "Initialised a new CA in %s\n", res.State)
			fmt.Fprintf(out, "  configuration: %s\n", res.Config)
			fmt.Fprintf(out, "  root:          %s\n", res.Root)
			fmt.Fprintf(out, "  directory:     %s\n", res.DirectoryURL)
			fmt.Fprintf(out, "Start it with: policyca ca --state %s\n", res.State)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.StateDir, "state", ".policyca", "state directory to create")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:8443", "address of the CA's HTTPS listener")
	f.StringVar(&o.ExternalURL, "external-url", "", "base URL clients use, if not https://<listen>")
	f.StringVar(&o.Name, "name", "policyca", "CA name (used in the root and intermediate subjects)")
	f.StringVar(&rootKey, "root-key", "ecdsa-p256", "root key type: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096")
	f.StringVar(&intKey, "intermediate-key", "ecdsa-p256", "intermediate key type (same choices)")
	f.StringVar(&rootValidity, "root-validity", "3650d", "root certificate validity")
	f.StringVar(&intValidity, "intermediate-validity", "1825d", "intermediate certificate validity")
	f.StringVar(&defaultLifetime, "default-lifetime", "24h", "default lifetime of issued certificates")
	f.StringVar(&maxLifetime, "max-lifetime", "90d", "maximum lifetime a client may request")
	f.StringSliceVar(&o.TLSNames, "tls-name", nil, "extra DNS name or IP for the CA's TLS certificate (repeatable)")
	f.IntVar(&o.HTTP01Port, "http01-port", 80, "port the CA connects to for http-01 validation")
	f.IntVar(&o.TLSALPN01Port, "tlsalpn01-port", 443, "port the CA connects to for tls-alpn-01 validation")
	f.StringSliceVar(&o.Resolvers, "resolver", nil, "DNS server host:port for validation (repeatable; default: the system resolver)")
	f.StringVar(&o.KMS, "kms", "", "PKCS#11 token URI: create the root and intermediate keys on this token (e.g. 'pkcs11:token=NAME?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/policyca/pin')")
	f.BoolVar(&o.Existing, "existing", false, "with --kms: use the keys already on the token (labels policyca-root, policyca-intermediate)")
	f.StringVar(&o.DatabaseURL, "db", "", "PostgreSQL URL (postgres://user:pass@host/db) to store the CA's data in, for one or several CA nodes; default: a SQLite file in the state directory")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
