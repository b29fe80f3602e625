package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"
)

// nopWrite is a write that changes nothing: enough to make a batch.
func nopWrite(context.Context, *sql.Tx) error { return nil }

// gatherStore opens a store with the given commit delay that reports the
// size of every committed batch on the returned channel.
func gatherStore(t *testing.T, delay time.Duration) (*Store, <-chan int) {
	t.Helper()
	s := mustOpen(t, t.TempDir()+"/db", WithCommitDelay(delay))
	sizes := make(chan int, 1024)
	s.beforeCommit = func(_ context.Context, _ *sql.Tx, n int) error {
		sizes <- n
		return nil
	}
	return s, sizes
}

// concurrently queues a batch of n while the writer is parked, so that
// the writer sees writes arriving together.
func concurrently(t *testing.T, s *Store, n int) {
	t.Helper()
	ctx := t.Context()
	release := holdWriter(t, s, ctx, nil)
	b := &batch{t: t, s: s}
	for range n {
		b.submit("nop", func() error { return s.write(ctx, nopWrite) })
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for _, err := range b.results() {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// drain returns the batch sizes committed so far.
func drain(sizes <-chan int) []int {
	var out []int
	for {
		select {
		case n := <-sizes:
			out = append(out, n)
		default:
			return out
		}
	}
}

// TestGroupCommitGathers: writes that come one at a time never wait for
// company (with an hour-long delay, a wait would be plain to see); once
// writes arrive together, a write that finds the queue empty waits until
// its batch is as large as the previous one, and is committed with it as
// soon as it is.
func TestGroupCommitGathers(t *testing.T) {
	s, sizes := gatherStore(t, time.Hour)
	defer s.Close()
	ctx := t.Context()
	for range 20 {
		// A guard against a hang, not a timing: a write that waited for
		// company would wait an hour.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := s.write(wctx, nopWrite)
		cancel()
		if err != nil {
			t.Fatalf("a write made alone: %v", err)
		}
	}
	if got := drain(sizes); len(got) != 20 {
		t.Fatalf("one at a time: batches %v, want 20 of one", got)
	}
	concurrently(t, s, 20) // batches of 1 (the parked write) and 20
	if got := drain(sizes); len(got) != 2 || got[1] != 20 {
		t.Fatalf("parked write and 20 queued: batches %v", got)
	}
	// 20 writes started one after the other, without waiting for each
	// other: the first one waits for the 19 others.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() { errs <- s.write(ctx, nopWrite) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := drain(sizes); len(got) != 1 || got[0] != 20 {
		t.Fatalf("20 concurrent writes after a batch of 20: batches %v, want one of 20", got)
	}
}

// TestGroupCommitGatherIsBounded: a write waiting for company is committed
// alone when the delay passes, and at once when the store closes.
func TestGroupCommitGatherIsBounded(t *testing.T) {
	for _, closing := range []bool{false, true} {
		delay := 20 * time.Millisecond
		if closing {
			delay = time.Hour
		}
		s, sizes := gatherStore(t, delay)
		gathering := make(chan struct{}, 1)
		s.onGather = func() { gathering <- struct{}{} }
		concurrently(t, s, 20)
		drain(sizes)
		done := make(chan error, 1)
		go func() { done <- s.write(t.Context(), nopWrite) }()
		select {
		case <-gathering:
		case err := <-done:
			t.Fatalf("the lone write was committed without waiting for company (%v)", err)
		}
		if closing {
			// Close waits for the writer, which is waiting for company.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("closing %v: lone write: %v", closing, err)
		}
		if got := drain(sizes); len(got) != 1 || got[0] != 1 {
			t.Fatalf("closing %v: batches %v, want one of 1", closing, got)
		}
		if !closing {
			s.Close()
		}
	}
}
