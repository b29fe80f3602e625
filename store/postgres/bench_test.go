package postgres

import (
	"testing"

	"github.com/policyca/policyca/internal/pgtest"
)

// Benchmarks run against the shared throwaway cluster, which has fsync off
// (see internal/pgtest): they measure the store and the protocol round
// trips, not the disk.

func BenchmarkCreateOrder(b *testing.B) {
	s := open(b, pgtest.Shared(b))
	acct := mustAccount(b, s, "bench")
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		o, authzs := testOrder(acct, "a.example.internal", "b.example.internal")
		if err := s.CreateOrder(ctx, o, authzs); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetAccount(b *testing.B) {
	s := open(b, pgtest.Shared(b))
	acct := mustAccount(b, s, "bench")
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.GetAccountByThumbprint(ctx, acct.KeyThumbprint); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetAccountParallel: lookups from many goroutines share the pool.
func BenchmarkGetAccountParallel(b *testing.B) {
	s := open(b, pgtest.Shared(b))
	acct := mustAccount(b, s, "bench")
	ctx := b.Context()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetAccount(ctx, acct.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
