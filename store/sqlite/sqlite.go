package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/policyca/policyca/store"
)

// Synchronous is SQLite's synchronous setting for the write connection.
type Synchronous string

const (
	// SyncFull fsyncs the log on every commit: committed data survives power
	// loss. The default.
	SyncFull Synchronous = "FULL"
	// SyncNormal fsyncs only at checkpoints: committed data survives a
	// process crash but the last commits may be lost on power loss. For
	// benchmarks and throwaway test databases only.
	SyncNormal Synchronous = "NORMAL"
)

// Option configures Open.
type Option func(*config)

type config struct {
	sync        Synchronous
	readConns   int
	busyTimeout time.Duration
	commitDelay time.Duration
}

// DefaultCommitDelay is how long, at most, the writer waits for more
// operations before committing a batch when writes are arriving
// concurrently (see writer.go).
const DefaultCommitDelay = 500 * time.Microsecond

// WithSynchronous sets the durability level (default SyncFull).
func WithSynchronous(s Synchronous) Option { return func(c *config) { c.sync = s } }

// WithReadConns sets the size of the read pool (default: number of CPUs,
// at least 4). Readers do not block each other or the writer.
func WithReadConns(n int) Option { return func(c *config) { c.readConns = n } }

// WithCommitDelay sets how long, at most, the writer waits for the
// operations of a batch to gather when writes arrive concurrently (default
// DefaultCommitDelay; 0 commits whatever is queued at once).
func WithCommitDelay(d time.Duration) Option { return func(c *config) { c.commitDelay = d } }

// WithBusyTimeout sets how long a connection waits for a lock held by
// another process (e.g. the CLI) before failing (default 10s).
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// Store is a store.Store backed by one SQLite file. It is safe for
// concurrent use.
type Store struct {
	w *sql.DB // exactly one connection: SQLite's single writer
	r *sql.DB // query_only connections
	stmts

	// Group commit (writer.go): writes are queued on ops for the writer
	// goroutine. closed, under wmu, stops new writes before quit ends it.
	ops        chan *writeOp
	quit       chan struct{}
	writerDone chan struct{}
	wmu        sync.RWMutex
	closed     bool
	// commitDelay bounds the wait for a batch to gather (writer.go).
	commitDelay time.Duration
	commits     atomic.Int64 // batches committed, for tests
	// beforeCommit, if set (tests only, before the first write), runs in
	// each batch's transaction just before COMMIT; n is the number of
	// operations that ran in it.
	beforeCommit func(ctx context.Context, tx *sql.Tx, n int) error
	// onGather, if set (tests only, before the first write), is called
	// when the writer starts waiting for a batch to gather.
	onGather func()
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and migrates its
// schema to SchemaVersion.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg := config{sync: SyncFull, readConns: max(4, runtime.NumCPU()), busyTimeout: 10 * time.Second,
		commitDelay: DefaultCommitDelay}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case path == "" || path == ":memory:" || strings.HasPrefix(path, "file:"):
		// An in-memory database would be a different one on every
		// connection of the two pools.
		return nil, fmt.Errorf("sqlite: %q: need the path of a database file", path)
	case strings.ContainsAny(path, "?#"):
		return nil, fmt.Errorf("sqlite: %q: '?' and '#' are not allowed in the database path", path)
	case cfg.sync != SyncFull && cfg.sync != SyncNormal:
		return nil, fmt.Errorf("sqlite: unsupported synchronous mode %q", cfg.sync)
	case cfg.commitDelay < 0:
		return nil, fmt.Errorf("sqlite: negative commit delay %v", cfg.commitDelay)
	case cfg.readConns < 1:
		return nil, fmt.Errorf("sqlite: need at least one read connection, got %d", cfg.readConns)
	}
	// The database holds EAB HMAC keys and the nodes' shared secrets:
	// created readable by its owner only (SQLite gives the -wal and -shm
	// files the database's mode). An existing file keeps its mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	busy := fmt.Sprintf("busy_timeout(%d)", cfg.busyTimeout.Milliseconds())

	wq := url.Values{}
	wq.Add("_pragma", busy)
	wq.Add("_pragma", "foreign_keys(1)")
	wq.Add("_pragma", "journal_mode(WAL)")
	wq.Add("_pragma", "synchronous("+string(cfg.sync)+")")
	wq.Set("_txlock", "immediate")
	w, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// One connection, kept forever so its prepared statements stay valid.
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{w: w, commitDelay: cfg.commitDelay}
	if err := s.checkWriter(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if err := migrate(ctx, w, len(migrations)); err != nil {
		w.Close()
		return nil, err
	}

	rq := url.Values{}
	rq.Add("_pragma", busy)
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	r.SetMaxOpenConns(cfg.readConns)
	r.SetMaxIdleConns(cfg.readConns)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	s.r = r
	if err := s.prepare(ctx); err != nil {
		s.Close()
		return nil, err
	}
	s.startWriter()
	return s, nil
}

// checkWriter makes sure the pragmas took effect: a file system without
// shared-memory support silently keeps the rollback journal, and then
// readers would block the writer.
func (s *Store) checkWriter(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: journal_mode is %q, want wal", mode)
	}
	var fk int
	if err := s.w.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	if fk != 1 {
		return errors.New("sqlite: foreign keys could not be enabled")
	}
	return nil
}

// Ping checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close finishes the writes already accepted, then closes the statements
// and both pools. Writes submitted afterwards fail. The last connection to
// close checkpoints the WAL into the main file.
func (s *Store) Close() error {
	s.stopWriter()
	s.closeStmts()
	var errR error
	if s.r != nil {
		errR = s.r.Close()
	}
	return errors.Join(errR, s.w.Close())
}

// mapErr turns SQLite errors into the store's sentinel errors, keeping the
// original text for logs.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			if strings.Contains(se.Error(), "certificates.serial") {
				return fmt.Errorf("%w: %v", store.ErrDuplicateSerial, err)
			}
			return fmt.Errorf("%w: %v", store.ErrConflict, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// The only references are to the owning account and order.
			return fmt.Errorf("%w: referenced object: %v", store.ErrNotFound, err)
		}
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR:
			// Another process held the lock past the busy timeout, or the
			// disk failed: nothing was wrong with the request.
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
	}
	return fmt.Errorf("sqlite: %w", err)
}

// versioned runs the versioned UPDATE upd (prepared on the writer) with
// args inside tx, and explains a miss: ErrNotFound if the row of table with
// the given id is gone, ErrConflict if its version moved on.
func versioned(ctx context.Context, tx *sql.Tx, upd *sql.Stmt, table, id string, args []any) error {
	res, err := tx.StmtContext(ctx, upd).ExecContext(ctx, args...)
	if err != nil {
		return mapErr(err)
	}
	n, err := affected(res)
	if err != nil {
		return err
	}
	if n == 0 {
		return missingOrConflict(ctx, tx, table, id)
	}
	return nil
}

// missingOrConflict explains why a versioned update touched no row. It
// reads through tx: an earlier operation of the same batch may have
// created or changed the row, which no reader can see before the COMMIT.
func missingOrConflict(ctx context.Context, tx *sql.Tx, table, id string) error {
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM "+table+" WHERE id = ?", id).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return store.ErrNotFound
	case err != nil:
		return mapErr(err)
	}
	return store.ErrConflict
}

func affected(res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, mapErr(err)
	}
	return n, nil
}
