package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/bench"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/policy"
)

func init() { benchSubcommands = append(benchSubcommands, newBenchPolicyCmd) }

// syntheticZone is the zone of the rules and names --rules generates.
const syntheticZone = "bench.example"

func newBenchPolicyCmd() *cobra.Command {
	var (
		bundlePath, prov, ident, stage string
		nIDs, nRules                   int
		asJSON                         bool
		o                              bench.PolicyOptions
	)
	cmd := &cobra.Command{
		Use:   "policy --bundle DIR|FILE [--ids N] [--rules N]",
		Short: "Make policy decisions with a bundle from C goroutines and report decisions/s and latency",
		Long: `policy loads a bundle the way the CA does and makes decisions with it for
--duration (or -n decisions), --ids identifiers each, at the order stage (or
the sign stage, with a CSR naming the same identifiers and a P-256 key). No
decision log is written.

Without --rules the bundle's own data decides identifiers made from --ident,
where {n} is the identifier's number. With --rules N the bundle's authority
layer, the provisioner's layer and an account policy are each replaced by N
generated DNS rules in the zone bench.example (one third ".dept-<i>"
suffixes, one third "*.svc-<i>" wildcards, one third "host-<i>" names, and
N/10 deny rules), and the identifiers match rules spread over the sets: the
scale of the CA's "10 identifiers against 1,000 rules in three layers"
benchmark is --ids 10 --rules 1000.

The result says whether the engine evaluated the default name rules in Go
or the bundle's own name rules in Rego (docs/policy.md, "Performance").`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if nIDs < 1 {
				return &exitError{2, fmt.Errorf("--ids must be at least 1")}
			}
			if nRules != 0 && nRules < 3 {
				return &exitError{2, fmt.Errorf("--rules must be 0 (the bundle's data) or at least 3")}
			}
			if stage != string(policy.StageOrder) && stage != string(policy.StageSign) {
				return &exitError{2, fmt.Errorf("--stage must be order or sign")}
			}
			src, acctPolicy := bundlePath, json.RawMessage(nil)
			if nRules > 0 {
				tmp, err := os.MkdirTemp("", "policyca-bench-policy-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				layer := policy.SyntheticLayer(nRules, syntheticZone)
				data, err := json.Marshal(map[string]any{"authority": layer, "provisioners": map[string]any{prov: layer}})
				if err != nil {
					return err
				}
				dataFile := filepath.Join(tmp, "data.json")
				if err := os.WriteFile(dataFile, data, 0o600); err != nil {
					return err
				}
				src = filepath.Join(tmp, "bundle")
				if err := overrideBundleData(bundlePath, dataFile, src); err != nil {
					return &exitError{2, err}
				}
				if acctPolicy, err = json.Marshal(layer); err != nil {
					return err
				}
			}
			e, err := policy.NewEngine(policy.EngineConfig{Path: src, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return &exitError{2, err}
			}
			tmpl, err := bench.ParseTemplate(ident)
			if err != nil {
				return &exitError{2, err}
			}
			ids := func(i int64) ([]core.Identifier, error) {
				if nRules > 0 {
					return policy.SyntheticIdentifiers(nIDs, nRules, syntheticZone), nil
				}
				out := make([]core.Identifier, nIDs)
				for k := range out {
					out[k] = core.Identifier{Type: core.DNS, Value: tmpl.Render(int(i-1)*nIDs + k)}
				}
				return core.NormalizeIdentifiers(out)
			}
			if _, err := ids(1); err != nil {
				return &exitError{2, fmt.Errorf("--ident: %w", err)}
			}
			o.Engine = e
			o.Input = func(i int64) policy.Input {
				in := policy.Input{
					Stage:       policy.Stage(stage),
					Provisioner: policy.ProvisionerInfo{Name: prov, Type: policy.ProvisionerType},
					Account:     policy.AccountInput{ID: fmt.Sprintf("bench-%d", i), Policy: acctPolicy},
				}
				in.Identifiers, _ = ids(i)
				if in.Stage == policy.StageSign {
					csr := &policy.CSRInfo{Key: policy.KeyInfo{Type: "ecdsa", Curve: "P-256"}}
					for _, id := range in.Identifiers {
						csr.SANs.DNS = append(csr.SANs.DNS, id.Value)
					}
					in.CSR = csr
				}
				return in
			}
			ctx, stop := interruptible()
			defer stop()
			res, err := bench.Policy(ctx, o)
			if err != nil {
				return &exitError{2, err}
			}
			return report(cmd.OutOrStdout(), res, asJSON, failures(res.Failed, "decisions failed"))
		},
	}
	f := cmd.Flags()
	f.StringVar(&bundlePath, "bundle", "", "bundle directory or .tar.gz (required)")
	f.IntVar(&nIDs, "ids", 1, "identifiers per decision")
	f.IntVar(&nRules, "rules", 0, "generated DNS rules per layer (0: the bundle's own data)")
	f.StringVar(&prov, "provisioner", "acme", "provisioner the decisions are for")
	f.StringVar(&ident, "ident", "host-{n}.bench.internal", "identifier template without --rules ({n}: the identifier's number)")
	f.StringVar(&stage, "stage", "order", "order or sign")
	f.IntVarP(&o.Concurrency, "c", "c", 1, "concurrent deciders")
	f.DurationVarP(&o.Duration, "duration", "d", bench.DefaultPolicyDuration, "how long to decide")
	f.IntVarP(&o.N, "n", "n", 0, "stop after this many decisions (0: run for --duration)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("bundle")
	return cmd
}
