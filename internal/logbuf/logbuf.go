// Package logbuf keeps the process log off the request path. slog handlers
// hold a mutex while they write a record, so with the log on a file or a
// pipe every request that logs waits for every other request's write
// system call: under load the log lock is where the CA's goroutines wait
// most (see docs/BENCHMARKS.md, "mutex profile"). A Writer takes each
// record into memory under its own short lock and one goroutine writes
// what has accumulated, in order, with one system call per batch.
//
// Nothing is dropped: when more than the limit is waiting, writers wait
// for the flusher (back-pressure), and Close writes everything out. What
// can be lost is what a kill -9 catches in memory, a few records at most;
// the CA's records of issuance and decisions are in its database, not in
// the log.
package logbuf

import (
	"io"
	"sync"
)

// DefaultLimit is how much may wait in memory before writers wait.
const DefaultLimit = 1 << 20

// Writer is an io.Writer that writes to an underlying writer from one
// goroutine. It is safe for concurrent use.
type Writer struct {
	w     io.Writer
	limit int

	mu      sync.Mutex
	drained *sync.Cond // signalled after each batch
	buf     []byte
	closed  bool
	err     error // the last error of the underlying writer

	kick      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// New starts a Writer on w; limit <= 0 means DefaultLimit.
func New(w io.Writer, limit int) *Writer {
	if limit <= 0 {
		limit = DefaultLimit
	}
	b := &Writer{w: w, limit: limit, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	b.drained = sync.NewCond(&b.mu)
	go b.flush()
	return b
}

// Write queues p (one log record) and returns at once, unless more than
// the limit is already waiting. After Close it writes p directly.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	for !b.closed && len(b.buf) > 0 && len(b.buf)+len(p) > b.limit {
		b.drained.Wait()
	}
	if b.closed {
		b.mu.Unlock()
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return len(p), nil
}

// flush writes batches, in order, until Close.
func (b *Writer) flush() {
	defer close(b.done)
	var spare []byte
	for {
		stopping := false
		select {
		case <-b.kick:
		case <-b.stop:
			stopping = true
		}
		b.mu.Lock()
		batch := b.buf
		b.buf = spare[:0]
		if stopping {
			// The last batch is written under the lock, so that a write
			// that finds the Writer closed lands after it.
			b.closed = true
			b.note(write(b.w, batch))
			b.drained.Broadcast()
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		err := write(b.w, batch)
		b.mu.Lock()
		b.note(err)
		b.drained.Broadcast()
		b.mu.Unlock()
		spare = batch
	}
}

func write(w io.Writer, batch []byte) error {
	if len(batch) == 0 {
		return nil
	}
	_, err := w.Write(batch)
	return err
}

// note keeps err as the last error; b.mu is held.
func (b *Writer) note(err error) {
	if err != nil {
		b.err = err
	}
}

// Close writes out everything queued and makes later writes direct. It
// returns the last error of the underlying writer, if any.
func (b *Writer) Close() error {
	b.closeOnce.Do(func() { close(b.stop) })
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
