package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
)

// Benchmarks report wall time per operation. With SyncFull that is mostly
// the fsync of the log, which costs no CPU; compare the sync=NORMAL runs
// (or -cpuprofile) to see the CPU cost of the store itself.

func benchStore(b *testing.B, sync Synchronous) (*Store, *core.Account) {
	b.Helper()
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"), WithSynchronous(sync))
	if err != nil {
		b.Fatalf("Open: %v", err)
	}
	b.Cleanup(func() { s.Close() })
	a := &core.Account{KeyThumbprint: "bench", Provisioner: "acme", Status: core.StatusValid,
		KeyJWK:  []byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`),
		Contact: []string{"mailto:ops@example.internal"}}
	if err := s.CreateAccount(b.Context(), a); err != nil {
		b.Fatalf("CreateAccount: %v", err)
	}
	return s, a
}

func benchOrder(a *core.Account, i int) (*core.Order, []*core.Authorization) {
	o := &core.Order{AccountID: a.ID, Provisioner: a.Provisioner, Status: core.StatusPending,
		Expires: time.Now().Add(time.Hour)}
	var authzs []*core.Authorization
	for _, n := range []string{"a", "b"} {
		id := core.Identifier{Type: core.DNS, Value: n + strconv.Itoa(i) + ".example.internal"}
		o.Identifiers = append(o.Identifiers, id)
		authzs = append(authzs, &core.Authorization{Identifier: id, Status: core.StatusPending,
			Expires: o.Expires, Challenges: []core.Challenge{
				{ID: "c1-" + strconv.Itoa(i), Type: core.ChallengeHTTP01, Token: "token-" + strconv.Itoa(i), Status: core.StatusPending},
				{ID: "c2-" + strconv.Itoa(i), Type: core.ChallengeDNS01, Token: "token-" + strconv.Itoa(i), Status: core.StatusPending},
			}})
	}
	return o, authzs
}

var syncModes = []Synchronous{SyncFull, SyncNormal}

func BenchmarkCreateOrder(b *testing.B) {
	for _, mode := range syncModes {
		b.Run("sync="+string(mode), func(b *testing.B) {
			s, a := benchStore(b, mode)
			ctx := b.Context()
			i := 0
			for b.Loop() {
				o, authzs := benchOrder(a, i)
				i++
				if err := s.CreateOrder(ctx, o, authzs); err != nil {
					b.Fatalf("CreateOrder: %v", err)
				}
			}
		})
	}
}

func BenchmarkGetAccount(b *testing.B) {
	s, a := benchStore(b, SyncFull)
	ctx := b.Context()
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetAccount(ctx, a.ID); err != nil {
				b.Fatalf("GetAccount: %v", err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.GetAccountByThumbprint(ctx, a.KeyThumbprint); err != nil {
					b.Errorf("GetAccountByThumbprint: %v", err)
					return
				}
			}
		})
	})
}

// BenchmarkIssuance runs the store calls of one ACME issuance with two
// identifiers: account lookup, newOrder, authorization fetches and
// validation, finalize and completion.
func BenchmarkIssuance(b *testing.B) {
	for _, mode := range syncModes {
		b.Run("sync="+string(mode), func(b *testing.B) {
			s, a := benchStore(b, mode)
			ctx := b.Context()
			der := make([]byte, 1200)
			i := 0
			for b.Loop() {
				i++
				if err := benchIssue(ctx, s, a, i, der); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchIssue makes the store calls of issuance number i.
func benchIssue(ctx context.Context, s *Store, a *core.Account, i int, der []byte) error {
	if _, err := s.GetAccountByThumbprint(ctx, a.KeyThumbprint); err != nil {
		return err
	}
	o, authzs := benchOrder(a, i)
	if err := s.CreateOrder(ctx, o, authzs); err != nil {
		return err
	}
	got, err := s.GetAuthorizations(ctx, o.AuthzIDs)
	if err != nil {
		return err
	}
	for _, az := range got {
		az.Status = core.StatusValid
		az.Challenges[0].Status = core.StatusValid
		az.Challenges[0].Validated = time.Now()
		if err := s.UpdateAuthorization(ctx, az); err != nil {
			return err
		}
	}
	o.Status, o.ProcessingSince = core.StatusProcessing, time.Now()
	if err := s.UpdateOrder(ctx, o); err != nil {
		return err
	}
	c := &core.Certificate{Serial: "5" + strconv.Itoa(i), AccountID: a.ID, OrderID: o.ID, DER: der,
		ChainPEM: der, NotBefore: time.Now(), NotAfter: time.Now().Add(24 * time.Hour), Names: o.Identifiers}
	c.ID = "cert-" + strconv.Itoa(i)
	o.Status, o.CertificateID, o.ProcessingSince = core.StatusValid, c.ID, time.Time{}
	if err := s.CompleteOrder(ctx, o, c); err != nil {
		return err
	}
	_, err = s.GetOrder(ctx, o.ID)
	return err
}

// parallelisms are b.SetParallelism factors: the goroutine count is the
// factor times GOMAXPROCS (16 and 32 on a 2-core machine), about the
// number of concurrent requests of the ACME load runs.
var parallelisms = []int{8, 16}

// runParallel runs op(i), with i unique across goroutines, under every
// sync mode and parallelism.
func runParallel(b *testing.B, op func(ctx context.Context, s *Store, a *core.Account, i int) error) {
	for _, mode := range syncModes {
		for _, p := range parallelisms {
			b.Run(fmt.Sprintf("sync=%s/par=%d", mode, p), func(b *testing.B) {
				s, a := benchStore(b, mode)
				ctx := b.Context()
				var next atomic.Int64
				b.SetParallelism(p)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := op(ctx, s, a, int(next.Add(1))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkCreateOrderParallel: concurrent newOrders, each one write
// transaction when run alone.
func BenchmarkCreateOrderParallel(b *testing.B) {
	runParallel(b, func(ctx context.Context, s *Store, a *core.Account, i int) error {
		o, authzs := benchOrder(a, i)
		return s.CreateOrder(ctx, o, authzs)
	})
}

// BenchmarkIssuanceParallel: concurrent issuances (the calls of
// BenchmarkIssuance, five of them writes).
func BenchmarkIssuanceParallel(b *testing.B) {
	der := make([]byte, 1200)
	runParallel(b, func(ctx context.Context, s *Store, a *core.Account, i int) error {
		return benchIssue(ctx, s, a, i, der)
	})
}
