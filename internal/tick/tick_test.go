package tick

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// TestEvery calls f on every tick, not at once, and returns when ctx ends.
func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int32
	done := make(chan struct{})
	go func() {
		Every(ctx, time.Millisecond, func(context.Context) {
			if n.Add(1) == 3 {
				cancel()
			}
		})
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("f ran %d times, want 3", got)
	}
	var calls atomic.Int32
	stopped, stop := context.WithCancel(context.Background())
	stop()
	Every(stopped, time.Hour, func(context.Context) { calls.Add(1) })
	if calls.Load() != 0 {
		t.Fatal("f ran before the first interval")
	}
}
