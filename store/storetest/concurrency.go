package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

var concurrencyTests = []subtest{
	{"UpdateOrderContention", testUpdateOrderContention},
	{"ParallelCreateOrder", testParallelCreateOrder},
	{"CreateAccountRace", testCreateAccountRace},
	{"CompleteOrderRace", testCompleteOrderRace},
}

// testUpdateOrderContention: goroutines do read-modify-write on one order.
// Every version must be won by exactly one writer, and every successful
// write must survive (no lost update).
func testUpdateOrderContention(t *testing.T, s store.Store) {
	const workers, perWorker = 20, 3
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)

	var (
		mu      sync.Mutex
		winners = map[int64]string{} // version written from -> writer
		wg      sync.WaitGroup
		errs    = make(chan error, workers)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < perWorker; {
				cur, err := s.GetOrder(ctx, o.ID)
				if err != nil {
					errs <- fmt.Errorf("worker %d: GetOrder: %w", w, err)
					return
				}
				from := cur.Version
				name := fmt.Sprintf("w%d-%d.example.internal", w, k)
				cur.Identifiers = append(cur.Identifiers, core.Identifier{Type: core.DNS, Value: name})
				err = s.UpdateOrder(ctx, cur)
				if errors.Is(err, store.ErrConflict) {
					continue // someone else won this version; re-read
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d: UpdateOrder: %w", w, err)
					return
				}
				if cur.Version != from+1 {
					errs <- fmt.Errorf("worker %d: Version %d after update from %d", w, cur.Version, from)
					return
				}
				mu.Lock()
				if prev, ok := winners[from]; ok {
					mu.Unlock()
					errs <- fmt.Errorf("version %d won by both %s and %s", from, prev, name)
					return
				}
				winners[from] = name
				mu.Unlock()
				k++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	total := workers * perWorker
	got, err := s.GetOrder(ctx, o.ID)
	noErr(t, "GetOrder", err)
	if got.Version != int64(total+1) {
		t.Fatalf("final Version = %d, want %d", got.Version, total+1)
	}
	for v := int64(1); v <= int64(total); v++ {
		if _, ok := winners[v]; !ok {
			t.Fatalf("no writer won version %d", v)
		}
	}
	var names []string
	for _, id := range got.Identifiers[1:] {
		names = append(names, id.Value)
	}
	var want []string
	for _, n := range winners {
		want = append(want, n)
	}
	slices.Sort(names)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("lost updates: stored %d identifiers, %d writes succeeded", len(names), len(want))
	}
}

// testParallelCreateOrder: parallel writers must queue, not fail with a
// backend lock error.
func testParallelCreateOrder(t *testing.T, s store.Store) {
	const workers, perWorker = 16, 4
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	ids := make([][]string, workers)
	for w := 0; w < workers; w++ {
		orders := make([]*core.Order, perWorker)
		authzs := make([][]*core.Authorization, perWorker)
		for k := range orders {
			orders[k], authzs[k] = newOrder(t, acct, "a.example.internal", "b.example.internal")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, o := range orders {
				if err := s.CreateOrder(ctx, o, authzs[k]); err != nil {
					errs <- fmt.Errorf("worker %d order %d: %w", w, k, err)
					continue
				}
				ids[w] = append(ids[w], o.ID)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	listed, next, err := s.ListOrderIDs(ctx, acct.ID, "", 1000, baseTime)
	noErr(t, "ListOrderIDs", err)
	if next != "" {
		t.Fatalf("unexpected next cursor %q", next)
	}
	want := slices.Concat(ids...)
	slices.Sort(listed)
	slices.Sort(want)
	if len(want) != workers*perWorker || !slices.Equal(listed, want) {
		t.Fatalf("listed %d orders, created %d, want %d", len(listed), len(want), workers*perWorker)
	}
}

// testCreateAccountRace: clients racing with the same key get one account.
func testCreateAccountRace(t *testing.T, s store.Store) {
	const workers = 10
	ctx := ctxT(t)
	thumb := newID(t)
	results := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		a := newAccount(t)
		a.KeyThumbprint = thumb
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w] = s.CreateAccount(ctx, a)
		}()
	}
	wg.Wait()
	wins := 0
	for w, err := range results {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("worker %d: %v, want nil or ErrConflict", w, err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d accounts created with one key, want 1", wins)
	}
}

// testCompleteOrderRace: two finalize attempts on one order version store
// exactly one certificate.
func testCompleteOrderRace(t *testing.T, s store.Store) {
	const workers = 8
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	o, _ := mustOrder(t, s, acct)
	certs := make([]*core.Certificate, workers)
	results := make([]error, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		mine := *o
		c := newCertificate(t, &mine)
		finish(&mine, c)
		certs[w] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w] = s.CompleteOrder(ctx, &mine, c)
		}()
	}
	wg.Wait()
	winner := -1
	for w, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("workers %d and %d both completed the order", winner, w)
			}
			winner = w
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("worker %d: %v, want nil or ErrConflict", w, err)
		}
	}
	if winner < 0 {
		t.Fatal("no worker completed the order")
	}
	got, err := s.GetOrder(ctx, o.ID)
	noErr(t, "GetOrder", err)
	if got.CertificateID != certs[winner].ID {
		t.Fatalf("order points at %q, winner stored %q", got.CertificateID, certs[winner].ID)
	}
	for w, c := range certs {
		_, err := s.GetCertificate(ctx, c.ID)
		if w == winner {
			noErr(t, "GetCertificate of winner", err)
		} else {
			wantErr(t, fmt.Sprintf("GetCertificate of loser %d", w), err, store.ErrNotFound)
		}
	}
}
