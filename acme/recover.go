package acme

import (
	"context"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/tick"
)

// RecoverStaleOrders ends orders left in "processing" for longer than
// olderThan, as after a crash between the ready → processing transition and
// the order's completion. They become invalid with a serverInternal error:
// the client can place a new order. It returns how many it changed.
func (s *Server) RecoverStaleOrders(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := s.now().Add(-olderThan)
	orders, err := s.store.ListStaleProcessingOrders(ctx, cutoff)
	if err != nil {
		return 0, storeError(err, "cannot list stale orders")
	}
	n := 0
	for _, stale := range orders {
		changed := false
		_, err := s.updateOrder(ctx, stale.ID, func(o *core.Order) (bool, error) {
			changed = false
			if o.Status != core.StatusProcessing || !o.ProcessingSince.Before(cutoff) {
				return false, nil
			}
			o.Status = core.StatusInvalid
			o.Error = core.Errorf(core.KindServerInternal, "issuance was interrupted; place a new order")
			changed = true
			return true, nil
		})
		if err != nil {
			return n, err
		}
		if changed {
			n++
			s.logger(ctx).Warn("stale processing order made invalid", "order", stale.ID)
		}
	}
	return n, nil
}

// RecoveryInterval is how often SweepStaleOrders looks for stale orders.
const RecoveryInterval = time.Minute

// SweepStaleOrders runs RecoverStaleOrders once, then again every
// RecoveryInterval in the background until ctx is done: every process that
// serves ACME (a CA node, an RA) ends the orders a crash left in
// processing, before it serves and while it runs. It returns after the
// first sweep.
func (s *Server) SweepStaleOrders(ctx context.Context, olderThan time.Duration) {
	sweep := func() {
		n, err := s.RecoverStaleOrders(ctx, olderThan)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("recovering stale orders", "err", err)
		case n > 0:
			s.log.Warn("orders left in processing marked invalid", "count", n)
		}
	}
	sweep()
	go tick.Every(ctx, RecoveryInterval, func(context.Context) { sweep() })
}
