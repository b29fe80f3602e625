package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/policyca/policyca/store"
)

// ErrUnavailable is wrapped by every error that means "the database cannot
// be reached or cannot serve us right now" (connection refused or lost,
// server shutting down or in recovery, a read-only standby after a
// failover, out of connections or disk, no answer within the store's
// timeout). Nothing about the request was wrong: the HTTP layer should
// answer serverInternal with a Retry-After header, and a retry may
// succeed once the database is back; the pool reconnects by itself.
//
// A write that fails this way may or may not have been committed (the
// connection can die after the server committed but before it answered);
// every write is one transaction, so it is either whole or absent, and a
// retry sees which (PutCertificate is idempotent for that reason;
// CompleteOrder is not: a retry of one that committed meets a newer order
// version, ErrConflict, and the caller reads the order to find it valid).
//
// It is store.ErrUnavailable, so that callers test one sentinel whatever
// the backend.
var ErrUnavailable = store.ErrUnavailable

// errOpTimeout is the cause of a context cancelled by the store's own
// per-call timeout, as opposed to the caller's context.
var errOpTimeout = errors.New("postgres: the database did not answer in time")

// Constraint whose violation means ErrDuplicateSerial rather than
// ErrConflict (see the schema).
const serialConstraint = "certificates_serial"

// mapErr turns pgx and PostgreSQL errors into the store's sentinel errors
// and ErrUnavailable, keeping the original error in the chain for logs.
// ctx is the context the failed call ran with.
func mapErr(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), errOpTimeout) {
			return fmt.Errorf("%w: %w: %w", ErrUnavailable, errOpTimeout, err)
		}
		// The caller gave up (or its deadline passed): that says nothing
		// about the database.
		return fmt.Errorf("postgres: %w", err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return store.ErrNotFound
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			if pe.ConstraintName == serialConstraint {
				return fmt.Errorf("%w: %w", store.ErrDuplicateSerial, err)
			}
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		case "23503": // foreign_key_violation: the owning account or order is gone
			return fmt.Errorf("%w: referenced object: %w", store.ErrNotFound, err)
		case "40001", "40P01": // serialization_failure, deadlock_detected
			// Another transaction won; callers re-read and retry as for a
			// version conflict.
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		}
	}
	if unavailable(err) {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return fmt.Errorf("postgres: %w", err)
}

// unavailable reports whether err means the database cannot serve us, as
// opposed to refusing this particular request.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection_exception
			strings.HasPrefix(pe.Code, "53"), // insufficient_resources: connections, disk, memory
			pe.Code == "57P01",               // admin_shutdown
			pe.Code == "57P02",               // crash_shutdown
			pe.Code == "57P03",               // cannot_connect_now: starting up, in recovery
			pe.Code == "57014",               // query_canceled: statement_timeout on the server
			pe.Code == "55P03",               // lock_not_available: lock_timeout on the server
			pe.Code == "25006":               // read_only_sql_transaction: a standby after a failover
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) ||
		errors.As(err, &ne) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// versionedMiss explains why a versioned update touched no row: the row is
// gone, or its version moved on.
func versionedMiss(exists bool, what, id string) error {
	if !exists {
		return fmt.Errorf("%w: %s %q", store.ErrNotFound, what, id)
	}
	return fmt.Errorf("%w: %s %q was changed concurrently", store.ErrConflict, what, id)
}
