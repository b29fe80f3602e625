package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Group commit. Every write of the store goes through one goroutine
// (writer), which takes all the operations queued at that moment, runs them
// in one transaction, one SAVEPOINT each, and commits once: one fsync of
// the log for the whole batch instead of one per operation. Callers get
// their result only after the COMMIT, so "returned nil" still means "on
// stable storage". See doc.go for why this is as durable as a transaction
// per operation.

// Gathering. Taking only what is queued when the writer wakes makes
// batches of two or three operations under load (measured: 2.8 on average
// at 16 clients), so the log is written and fsynced for every two or three
// writes, which is most of the store's CPU. When writes keep arriving
// concurrently (on average, over recent batches, at least two operations
// are already queued when the writer wakes), the writer waits, at most
// commitDelay, until the batch is as large as the previous one. At low
// load nothing waits (a lone client's writes depend on each other: waiting
// would only delay them); under load the wait mostly ends early, and the
// batch is committed as soon as it has gathered. Callers still get their
// result only after the COMMIT.

// maxBatch bounds the operations of one transaction, so that one COMMIT
// (and the latency of the callers waiting for it) stays short even when
// thousands of requests are queued.
const maxBatch = 64

// errClosed is returned for writes submitted after Close.
var errClosed = errors.New("sqlite: store is closed")

// Operation states: the caller and the writer race to move an operation out
// of opQueued, and whoever wins decides whether it runs.
const (
	opQueued int32 = iota
	opStarted
	opCancelled
)

// writeFunc is the body of one write operation. It must use only tx (the
// writer connection is inside the transaction, so anything else would
// deadlock) and the context it is given, never the caller's: cancelling a
// statement interrupts the connection, which would roll back the whole
// batch. It must not change the caller's structs either: the batch may
// still fail at COMMIT, and the caller applies its changes once write
// returns nil.
type writeFunc func(ctx context.Context, tx *sql.Tx) error

type writeOp struct {
	ctx   context.Context // the caller's: only checked before the op starts
	fn    writeFunc
	state atomic.Int32
	done  chan error // buffered: the writer never waits for the caller
}

// write runs fn in the next batch and returns its error once the batch is
// committed (or fn's own error, fn's changes being rolled back to its
// savepoint). An operation whose ctx is done before it starts is skipped
// and returns ctx.Err(); once started it runs to the end, and write waits
// for it even if ctx is done meanwhile, so that the caller never returns
// while its write may still commit.
func (s *Store) write(ctx context.Context, fn writeFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	// The read lock keeps Close from stopping the writer between our check
	// of closed and the send, which would strand the operation.
	s.wmu.RLock()
	if s.closed {
		s.wmu.RUnlock()
		return errClosed
	}
	select {
	case s.ops <- op:
		s.wmu.RUnlock()
	case <-ctx.Done():
		s.wmu.RUnlock()
		return ctx.Err()
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		if op.state.CompareAndSwap(opQueued, opCancelled) {
			return ctx.Err()
		}
		return <-op.done // started: wait for the outcome
	}
}

// startWriter starts the writer goroutine; stopWriter ends it.
func (s *Store) startWriter() {
	s.ops = make(chan *writeOp, maxBatch)
	s.quit = make(chan struct{})
	s.writerDone = make(chan struct{})
	go s.writer()
}

// stopWriter refuses new writes, lets the writer finish the ones already
// accepted, and waits for it.
func (s *Store) stopWriter() {
	if s.ops == nil {
		return // Open failed before starting it
	}
	s.wmu.Lock()
	already := s.closed
	s.closed = true
	s.wmu.Unlock()
	if !already {
		close(s.quit)
	}
	<-s.writerDone
}

func (s *Store) writer() {
	defer close(s.writerDone)
	batch := make([]*writeOp, 0, maxBatch)
	quitting := false
	last := 0     // operations in the previous batch
	queued := 1.0 // moving average of the operations found queued
	for {
		if len(batch) == 0 && !quitting {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			case <-s.quit:
				// No send can be in flight any more (closed is set under
				// the lock every sender holds), so draining the channel
				// below empties it for good.
				quitting = true
			}
		}
		// Take whatever else is queued, without waiting: at low load a
		// batch is one operation and its latency is unchanged.
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		if len(batch) == 0 {
			return // quitting and nothing left
		}
		queued = 0.9*queued + 0.1*float64(len(batch))
		if queued >= 2 && len(batch) < last && s.commitDelay > 0 && !quitting {
			batch = s.gather(batch, last)
		}
		last = len(batch)
		rest := s.runBatch(batch)
		n := copy(batch, rest)
		clear(batch[n:])
		batch = batch[:n]
	}
}

// gather adds operations to batch as they arrive until it has want of
// them, commitDelay has passed, or the store is closing.
func (s *Store) gather(batch []*writeOp, want int) []*writeOp {
	if s.onGather != nil {
		s.onGather()
	}
	t := time.NewTimer(s.commitDelay)
	defer t.Stop()
	for len(batch) < want {
		select {
		case op := <-s.ops:
			batch = append(batch, op)
		case <-t.C:
			return batch
		case <-s.quit:
			return batch
		}
	}
	return batch
}

// claim decides whether op runs: false if its caller gave up or its
// context is done (then the caller gets ctx.Err()).
func claim(op *writeOp) bool {
	if err := op.ctx.Err(); err != nil {
		op.state.Store(opCancelled)
		op.done <- err
		return false
	}
	return op.state.CompareAndSwap(opQueued, opStarted)
}

// ran is an operation executed in the current transaction and its own
// result, delivered only once the transaction's fate is known.
type ran struct {
	op  *writeOp
	err error
}

// runBatch runs ops in one transaction and answers them. It returns the
// operations it did not get to because the transaction broke (they go into
// the next batch).
func (s *Store) runBatch(ops []*writeOp) []*writeOp {
	ctx := context.Background() // see writeFunc: never the callers' contexts
	var (
		tx   *sql.Tx
		done = make([]ran, 0, len(ops))
	)
	// A lone operation needs no savepoint: the transaction is its unit.
	single := len(ops) == 1
	for i, op := range ops {
		if !claim(op) {
			continue
		}
		if tx == nil {
			var err error
			if tx, err = s.w.BeginTx(ctx, nil); err != nil {
				// No transaction (another process held the lock past
				// busy_timeout, or the database is closed): this op
				// fails, the others get their own attempt.
				op.done <- mapErr(err)
				return ops[i+1:]
			}
		}
		err, broken := s.runOp(ctx, tx, op, single)
		done = append(done, ran{op, err})
		if broken != nil {
			// The transaction is gone or in an unknown state: nothing of
			// it may be committed. The op that broke it reports why, the
			// ones before it that succeeded are undone with it.
			_ = tx.Rollback()
			for _, r := range done {
				if r.err == nil {
					r.err = fmt.Errorf("sqlite: batch aborted: %w", broken)
				}
				r.op.done <- r.err
			}
			return ops[i+1:]
		}
	}
	if tx == nil {
		return nil // every op was cancelled before it started
	}
	var cerr error
	if single && done[0].err != nil {
		// The op's own error is the answer; a failed ROLLBACK (SQLite
		// may have rolled back already) changes nothing for it.
		_ = tx.Rollback()
	} else {
		if s.beforeCommit != nil {
			if err := s.beforeCommit(ctx, tx, len(done)); err != nil {
				_ = tx.Rollback()
				cerr = err
			}
		}
		if cerr == nil {
			// The driver rolls back if COMMIT fails and leaves the
			// connection outside any transaction.
			if err := tx.Commit(); err != nil {
				cerr = mapErr(err)
			} else {
				s.commits.Add(1)
			}
		}
	}
	for _, r := range done {
		if cerr != nil {
			// Nothing was committed: whatever an op did or reported, the
			// batch's failure is what its caller must see.
			r.err = fmt.Errorf("sqlite: commit: %w", cerr)
		}
		r.op.done <- r.err
	}
	return nil
}

// runOp runs op inside tx under its own savepoint (unless single). err is
// op's result; broken is non-nil if the transaction can no longer be
// committed (a savepoint statement failed, which happens when SQLite has
// rolled the whole transaction back by itself, or op panicked).
func (s *Store) runOp(ctx context.Context, tx *sql.Tx, op *writeOp, single bool) (err, broken error) {
	if !single {
		if _, err := tx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			return mapErr(err), err
		}
	}
	err = callOp(ctx, tx, op.fn)
	var p panicError
	if errors.As(err, &p) {
		return err, err
	}
	if single {
		return err, nil
	}
	if err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO op"); rerr != nil {
			return err, rerr
		}
	}
	if _, rerr := tx.ExecContext(ctx, "RELEASE op"); rerr != nil {
		return err, rerr
	}
	return err, nil
}

// panicError carries a panic of a writeFunc back to its caller: the writer
// goroutine must survive it (net/http recovers a handler's panic, and the
// store must not turn one request's bug into a dead CA).
type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprintf("sqlite: write panicked: %v", p.v) }

func callOp(ctx context.Context, tx *sql.Tx, fn writeFunc) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicError{v}
		}
	}()
	return fn(ctx, tx)
}
