// Package tick runs periodic work: the background loops of the CA and the
// RA (recovery sweeps, nonce pruning, bundle polling, renewals).
package tick

import (
	"context"
	"time"
)

// Every calls f every interval until ctx is done, the first time one
// interval from now. It returns when ctx is done.
func Every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f(ctx)
		}
	}
}
