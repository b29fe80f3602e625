package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/policyca/policyca/acme"
	"github.com/policyca/policyca/acme/nonce"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/store"
	"github.com/policyca/policyca/store/postgres"
	"github.com/policyca/policyca/store/sqlite"
)

// OpenStore opens the configured database (running its migrations). The
// CA and the operator commands that work on a state directory share it, so
// that both find the same data whatever the driver.
func OpenStore(ctx context.Context, cfg *config.Config) (store.Store, error) {
	switch cfg.Database.Driver {
	case "postgres":
		st, err := postgres.Open(ctx, cfg.Database.URL)
		if err != nil {
			// pgx masks the password in its errors; the URL itself is
			// never printed.
			return nil, fmt.Errorf("database.url: %w", err)
		}
		return st, nil
	default:
		st, err := sqlite.Open(ctx, cfg.Path(cfg.Database.Path))
		if err != nil {
			return nil, fmt.Errorf("database.path: %w", err)
		}
		return st, nil
	}
}

// NodeName is the name this node writes into decision records: the
// configured node_name, else hostname/listen, which tells apart several
// nodes on one host as well as nodes on several hosts.
func NodeName(cfg *config.Config) string {
	if cfg.NodeName != "" {
		return cfg.NodeName
	}
	if h, err := os.Hostname(); err == nil {
		return h + "/" + cfg.Listen
	}
	return cfg.Listen
}

// newNonces picks the nonce source. A PostgreSQL database may be shared by
// several nodes behind a load balancer, which sends a client's next request
// to any of them: nonces must then be redeemable cluster-wide, at the cost
// of one INSERT per request. SQLite means one node, which keeps the
// in-memory source (no database write per request). prune, if not nil,
// must run for the life of the node.
func newNonces(ctx context.Context, cfg *config.Config, st store.Store, log *slog.Logger) (src acme.NonceSource, prune func(context.Context), err error) {
	if cfg.Database.Driver != "postgres" {
		m, err := nonce.NewMemory(1 << 16)
		return m, nil, err
	}
	sh, err := nonce.NewShared(ctx, st, nonce.SharedOptions{Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return sh, func(ctx context.Context) { sh.RunPruner(ctx, nonce.DefaultPruneEvery) }, nil
}

// staleAfter is the configured stale_processing, or its default for a
// configuration built without config.Load: zero would end every order in
// processing, including those another node is signing right now.
func staleAfter(cfg *config.Config) time.Duration {
	if d := cfg.StaleProcessing.D(); d > 0 {
		return d
	}
	return 5 * time.Minute
}
