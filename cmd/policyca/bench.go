package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/bench"
	"github.com/policyca/policyca/signer"
)

// benchSubcommands lets other files add to `policyca bench` (policy, …)
// without editing this one: they append their constructor from init().
var benchSubcommands []func() *cobra.Command

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Load generators: measure a CA's ACME issuance rate, a signing key's speed",
		Long: `bench measures. Run it on a quiet machine, and read docs/BENCHMARKS.md
for what the numbers mean and how they were taken for this release.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newBenchACMECmd(), newBenchSignCmd())
	for _, f := range benchSubcommands {
		cmd.AddCommand(f())
	}
	return cmd
}

// interruptible returns a context cancelled by Ctrl-C, so a long run stops
// and still prints what it measured.
func interruptible() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// failures is the error of a run in which n operations failed ("n what"),
// nil when none did.
func failures(n int, what string) error {
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%d %s", n, what)
}

// report prints a bench result as JSON or text, then returns failed (the
// run's failures, if any) as exit status 1.
func report(out io.Writer, res interface{ WriteText(io.Writer) }, asJSON bool, failed error) error {
	if asJSON {
		if err := writeJSON(out, res); err != nil {
			return err
		}
	} else {
		res.WriteText(out)
	}
	if failed != nil {
		return &exitError{1, failed}
	}
	return nil
}

func newBenchACMECmd() *cobra.Command {
	var (
		o                benchACMEFlags
		caFile, accounts string
		eabHMAC          string
		asJSON, serials  bool
		cpuProfile       string
	)
	cmd := &cobra.Command{
		Use:   "acme --dir URL -n N -c C",
		Short: "Issue N certificates through the full ACME http-01 flow with C concurrent clients",
		Long: `acme drives an ACME server through complete issuances: newOrder, the
authorization, http-01 answered by this command on --http01-port (the CA
under test must validate on that port), finalize with a fresh P-256 key,
and the certificate, which is parsed and checked against the identifier
and, with --ca, verified to the root.

It polls authorizations every 5-20 ms instead of sleeping the Retry-After
the server asks for, and retries nothing but badNonce, so that latency is
the server's and server errors show in the histogram.

Identifiers come from --ident: {n} is the issuance number from 0, {n+B},
{n%M} and {n%M+B} transform it. The default bench-{n}.localhost needs no
DNS: a CA resolves *.localhost to loopback (RFC 6761). A template that
renders IP addresses (127.0.0.{n%250+1}) asks for IP certificates, and the
responder listens on each of those addresses.

The exit status is 0 when every issuance succeeded, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := bench.ACMEOptions{
				DirectoryURL: o.dir, N: o.n, Concurrency: o.c, Accounts: bench.AccountMode(accounts),
				Identifier: o.ident, HTTP01Port: o.port, HTTP01Host: o.host, EABKeyID: o.eabKID,
				Timeout: o.timeout, ServerPID: o.serverPID,
			}
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return &exitError{2, fmt.Errorf("--ca: %w", err)}
				}
				opts.Roots = x509.NewCertPool()
				if !opts.Roots.AppendCertsFromPEM(pem) {
					return &exitError{2, fmt.Errorf("--ca %s: no PEM certificate in it", caFile)}
				}
			}
			if eabHMAC != "" {
				k, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(eabHMAC, "="))
				if err != nil {
					return &exitError{2, fmt.Errorf("--eab-hmac: not base64url: %w", err)}
				}
				opts.EABHMAC = k
			}
			ctx, stop := interruptible()
			defer stop()
			stopProfile, err := startCPUProfile(cpuProfile)
			if err != nil {
				return &exitError{2, err}
			}
			res, err := bench.Run(ctx, opts)
			if perr := stopProfile(); perr != nil && err == nil {
				err = perr
			}
			if err != nil {
				return &exitError{2, err}
			}
			if !serials {
				res.Serials = nil
			}
			return report(cmd.OutOrStdout(), res, asJSON,
				failures(res.Requested-res.Succeeded, fmt.Sprintf("of %d issuances did not succeed", res.Requested)))
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.dir, "dir", "", "ACME directory URL of the CA under test (required)")
	f.StringVar(&caFile, "ca", "", "root certificate (PEM) to trust for the CA's TLS and the issued chains (default: system roots)")
	f.IntVarP(&o.n, "n", "n", 100, "number of issuances")
	f.IntVarP(&o.c, "c", "c", 8, "concurrent clients")
	f.StringVar(&accounts, "accounts", string(bench.AccountsOne), "one (a shared account, registered before timing) or per-order (a new account per issuance, timed)")
	f.StringVar(&o.ident, "ident", bench.DefaultIdentifier, "identifier template; {n}, {n+B}, {n%M}, {n%M+B}")
	f.IntVar(&o.port, "http01-port", 5002, "port to answer http-01 on (the CA must validate on it)")
	f.StringVar(&o.host, "http01-host", "", "address to answer http-01 on (default: loopback and the IP identifiers)")
	f.StringVar(&o.eabKID, "eab-kid", "", "External Account Binding key id (it binds one account: with --accounts one only)")
	f.StringVar(&eabHMAC, "eab-hmac", "", "External Account Binding HMAC key, base64url")
	f.DurationVar(&o.timeout, "timeout", bench.DefaultTimeout, "hard limit on the whole run")
	f.IntVar(&o.serverPID, "server-pid", 0, "pid of the CA under test, to report its CPU time per issuance (Linux)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVar(&serials, "serials", false, "include the issued serial numbers in the JSON output")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of this load generator to the file (go tool pprof)")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// startCPUProfile starts a CPU profile of this process into path (nothing
// if path is empty); the function it returns stops it and closes the file.
func startCPUProfile(path string) (func() error, error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		return nil
	}, nil
}

// benchACMEFlags holds the plain flag values of `bench acme`.
type benchACMEFlags struct {
	dir, ident, host, eabKID string
	n, c, port, serverPID    int
	timeout                  time.Duration
}

func newBenchSignCmd() *cobra.Command {
	var (
		keyURI string
		o      bench.SignOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "sign --key URI",
		Short: "Sign SHA-256 digests with a key (file:, pkcs11:…) from C goroutines and report signatures/s",
		Long: `sign opens the key the way the CA opens its issuer key, so any URI the CA
accepts works here (file: for software keys, pkcs11: for an HSM), and signs
SHA-256 digests concurrently for --duration (or -n signatures). One
certificate costs one signature, so this is the ceiling the key puts on
issuance. The first signature is verified against the public key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := interruptible()
			defer stop()
			s, err := signer.Open(ctx, keyURI)
			if err != nil {
				return &exitError{2, err}
			}
			if c, ok := s.(io.Closer); ok {
				defer c.Close()
			}
			o.Signer = s
			res, err := bench.Sign(ctx, o)
			if err != nil {
				return &exitError{2, err}
			}
			return report(cmd.OutOrStdout(), res, asJSON, failures(res.Failed, "signatures failed"))
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyURI, "key", "", "key URI, e.g. file:/path/key.pem or pkcs11:token=…;object=…?pin-source=file:… (required)")
	f.IntVarP(&o.Concurrency, "c", "c", 4, "concurrent signers")
	f.DurationVarP(&o.Duration, "duration", "d", bench.DefaultSignDuration, "how long to sign")
	f.IntVarP(&o.N, "n", "n", 0, "stop after this many signatures (0: run for --duration)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	_ = cmd.MarkFlagRequired("key")
	return cmd
}
