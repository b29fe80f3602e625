package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/store/migrate"
	"github.com/policyca/policyca/store/postgres"
	"github.com/policyca/policyca/store/sqlite"
)

func newDBCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "db",
		Short: "Database operations: migrate between backends",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newDBMigrateCmd())
	return cmd
}

// exchangeStore is a backend opened for migration.
type exchangeStore interface {
	migrate.Target
	Close() error
}

func newDBMigrateCmd() *cobra.Command {
	var from, to string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "migrate --from sqlite:PATH --to postgres://…",
		Short: "Copy every account, order, authorization, certificate, EAB key, decision, RA and RA enrolment token to another database",
		Long: `migrate copies a CA's data from one database to another, typically from the
SQLite file of a single node (sqlite:PATH) to the PostgreSQL database that
several nodes will share (postgres://user:pass@host/db). IDs, versions, times
and EAB bindings are kept. The copy is one transaction on the target, and is
verified table by table: equal row counts, and equal SHA-256 checksums over
all rows computed on both sides. The target must be empty; a second run is
refused. Stop the CA before migrating, then point its configuration at the
new database (database.driver "postgres", database.url).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return &exitError{2, errors.New("both --from and --to are required")}
			}
			ctx := cmd.Context()
			src, err := openExchange(ctx, from, true)
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			defer src.Close()
			dst, err := openExchange(ctx, to, false)
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			defer dst.Close()
			res, err := migrate.Copy(ctx, src, dst)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TABLE\tROWS\tSHA-256 (source = target)")
			for _, r := range res {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", r.Table, r.Rows, r.SHA256)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(out, "Migration complete and verified.")
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source database: sqlite:PATH or postgres://…")
	f.StringVar(&to, "to", "", "target database, empty: postgres://… or sqlite:PATH")
	f.BoolVar(&asJSON, "json", false, "print the per-table result as JSON")
	return cmd
}

// openExchange opens a database named by sqlite:PATH or a postgres URL.
// A source SQLite file must exist: opening a missing one would create an
// empty database and "migrate" nothing.
func openExchange(ctx context.Context, spec string, source bool) (exchangeStore, error) {
	if path, ok := strings.CutPrefix(spec, "sqlite:"); ok {
		if path == "" {
			return nil, errors.New("sqlite: needs a path (sqlite:/var/lib/policyca/db/policyca.db)")
		}
		if source {
			if _, err := os.Stat(path); err != nil {
				return nil, err
			}
		}
		return sqlite.Open(ctx, path)
	}
	if err := config.CheckPostgresURL(spec); err != nil {
		return nil, fmt.Errorf("want sqlite:PATH or postgres://…: %w", err)
	}
	return postgres.Open(ctx, spec)
}
