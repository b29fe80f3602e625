package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/internal/logbuf"
	"github.com/policyca/policyca/server"
)

// loadConfig resolves --config or --state to a loaded configuration.
func loadConfig(stateDir, cfgPath string) (*config.Config, string, error) {
	if cfgPath == "" {
		cfgPath = bootstrap.ConfigPath(stateDir)
	}
	c, err := config.Load(cfgPath)
	if err != nil {
		return nil, cfgPath, err
	}
	return c, cfgPath, nil
}

func newCACmd() *cobra.Command {
	var stateDir, cfgPath, listen string
	cmd := &cobra.Command{
		Use:   "ca",
		Short: "Run the CA: ACME server, validation, signing, storage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := loadConfig(stateDir, cfgPath)
			if err != nil {
				return err
			}
			if listen != "" {
				c.Listen = listen
			}
			// Closed last: what is logged while shutting down is written.
			lw := logbuf.New(os.Stderr, 0)
			defer lw.Close()
			log := server.NewLogger(c.Log, lw)
			tuneGC(log)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			srv, err := server.New(ctx, c, log)
			if err != nil {
				return fmt.Errorf("starting the CA from %s: %w", path, err)
			}
			defer srv.Close()
			out := cmd.OutOrStdout()
			dir := c.BaseURL() + "/acme/" + c.Provisioners[0].Name + "/directory"
			root := c.Path(c.Issuer.Root)
			fmt.Fprintf(out, "policyca CA serving on %s\n", c.Listen)
			fmt.Fprintf(out, "  ACME directory: %s\n", dir)
			fmt.Fprintf(out, "  root certificate: %s\n", root)
			fmt.Fprintf(out, "  try:\n    %s\n", certbotExample(c, dir, root))
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					if err := srv.ReloadPolicy(ctx); err != nil {
						log.Error("SIGHUP: policy bundle refused, the previous one stays in force", "err", err)
					} else {
						log.Info("SIGHUP: policy bundle reloaded")
					}
				}
			}()
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&stateDir, "state", ".policyca", "state directory created by init")
	f.StringVar(&cfgPath, "config", "", "configuration file (default <state>/policyca.json)")
	f.StringVar(&listen, "listen", "", "override the configured listen address")
	return cmd
}

// certbotExample is a certbot command that works against this CA from the
// same machine: myhost.localhost is loopback (RFC 6761), so the CA reaches
// certbot's standalone responder on the configured http-01 port.
func certbotExample(c *config.Config, dir, root string) string {
	p := c.Provisioners[0]
	var b strings.Builder
	work := filepath.Join(filepath.Dir(root), "..", "certbot")
	if abs, err := filepath.Abs(work); err == nil {
		work = abs
	}
	if p.Validation.HTTP01Port < 1024 && os.Geteuid() != 0 {
		b.WriteString("sudo ")
	}
	fmt.Fprintf(&b, "REQUESTS_CA_BUNDLE=%s certbot certonly --standalone --non-interactive --agree-tos --register-unsafely-without-email", root)
	fmt.Fprintf(&b, " --server %s", dir)
	if p.Validation.HTTP01Port != 80 {
		fmt.Fprintf(&b, " --http-01-port %d", p.Validation.HTTP01Port)
	}
	fmt.Fprintf(&b, " --config-dir %[1]s --work-dir %[1]s --logs-dir %[1]s -d myhost.localhost", work)
	return b.String()
}
