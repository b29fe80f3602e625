package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/policyca/policyca/store"
)

// Defaults, each overridable by an Option.
const (
	// DefaultTimeout bounds every store call, so that a database that
	// stops answering (a black-holed network, a hung server) turns into
	// ErrUnavailable instead of requests piling up.
	DefaultTimeout = 10 * time.Second
	// DefaultConnectTimeout applies when the URL has no connect_timeout:
	// without one a dial to an unreachable host waits for the kernel's
	// TCP timeout, minutes.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultHealthCheckPeriod is how often idle connections are checked
	// (and dead ones dropped) in the background.
	DefaultHealthCheckPeriod = 15 * time.Second
)

// Option configures Open.
type Option func(*config)

type config struct {
	timeout     time.Duration
	maxConns    int32
	healthCheck time.Duration
}

// WithTimeout bounds each store call (default DefaultTimeout); a call cut
// short by it fails with ErrUnavailable. d <= 0 leaves calls bounded only by
// the caller's context.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithMaxConns sets the size of the connection pool (default: the URL's
// pool_max_conns, else pgxpool's default, the greater of 4 and the number
// of CPUs). Several nodes share the server's max_connections.
func WithMaxConns(n int32) Option { return func(c *config) { c.maxConns = n } }

// WithHealthCheckPeriod sets how often idle connections are checked
// (default DefaultHealthCheckPeriod).
func WithHealthCheckPeriod(d time.Duration) Option { return func(c *config) { c.healthCheck = d } }

// Store is a store.Store backed by a PostgreSQL database, which several
// policyca nodes may share. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	timeout time.Duration
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a libpq
// key=value string; pgxpool settings such as pool_max_conns are honoured)
// and migrates its schema to SchemaVersion. A database that cannot be
// reached is an error wrapping ErrUnavailable.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg := config{timeout: DefaultTimeout, healthCheck: DefaultHealthCheckPeriod}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.maxConns < 0 || cfg.healthCheck <= 0 {
		return nil, fmt.Errorf("postgres: invalid options: max conns %d, health check period %v", cfg.maxConns, cfg.healthCheck)
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The error text masks passwords.
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.maxConns > 0 {
		pc.MaxConns = cfg.maxConns
	}
	pc.HealthCheckPeriod = cfg.healthCheck
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	// The default QueryExecModeCacheStatement prepares each statement on
	// first use per connection and reuses it afterwards, so the hot paths
	// skip parsing and planning without a prepare step of ours. Behind a
	// pooler in transaction mode (PgBouncer) set default_query_exec_mode
	// in the URL instead of changing it here.
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, timeout: cfg.timeout}
	err = s.inTx(ctx, func(ctx context.Context, tx pgx.Tx) error {
		return migrate(ctx, tx, len(migrations))
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Ping checks that the database answers (health checks). A failure wraps
// ErrUnavailable.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		err = mapErr(ctx, err)
		if !errors.Is(err, ErrUnavailable) && ctx.Err() == nil {
			err = fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return err
	}
	return nil
}

// Close closes the pool, waiting for calls in progress to return their
// connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// op bounds one store call by the store's timeout; mapErr tells that
// timeout apart from the caller's own deadline through the context's cause.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	if s.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, s.timeout, errOpTimeout)
}

// inTx runs fn in a READ COMMITTED transaction and commits it if fn
// succeeds. READ COMMITTED is enough because every invariant is enforced by
// a single statement: a versioned UPDATE re-checks its WHERE clause on the
// newest row version after waiting for a concurrent writer, and uniqueness
// is left to unique indexes. Errors from fn are returned as they are (fn
// maps its own); errors from BEGIN and COMMIT are mapped here. If COMMIT
// fails because the connection died, the outcome is unknown: see
// ErrUnavailable.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return mapErr(ctx, err)
	}
	if err := fn(ctx, tx); err != nil {
		// Not a fresh context: if ctx is done or the connection is gone,
		// pgx closes the connection (the server then rolls back) instead
		// of waiting on a database that may never answer.
		_ = tx.Rollback(ctx)
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return mapErr(ctx, err)
	}
	return nil
}
