package sqlite

import (
	"path/filepath"
	"strconv"
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
				if _, err := s.GetAccountByThumbprint(ctx, a.KeyThumbprint); err != nil {
					b.Fatal(err)
				}
				o, authzs := benchOrder(a, i)
				if err := s.CreateOrder(ctx, o, authzs); err != nil {
					b.Fatal(err)
				}
				got, err := s.GetAuthorizations(ctx, o.AuthzIDs)
				if err != nil {
					b.Fatal(err)
				}
				for _, az := range got {
					az.Status = core.StatusValid
					az.Challenges[0].Status = core.StatusValid
					az.Challenges[0].Validated = time.Now()
					if err := s.UpdateAuthorization(ctx, az); err != nil {
						b.Fatal(err)
					}
				}
				o.Status, o.ProcessingSince = core.StatusProcessing, time.Now()
				if err := s.UpdateOrder(ctx, o); err != nil {
					b.Fatal(err)
				}
				c := &core.Certificate{Serial: "5" + strconv.Itoa(i), AccountID: a.ID, OrderID: o.ID, DER: der,
					ChainPEM: der, NotBefore: time.Now(), NotAfter: time.Now().Add(24 * time.Hour), Names: o.Identifiers}
				c.ID = "cert-" + strconv.Itoa(i)
				o.Status, o.CertificateID, o.ProcessingSince = core.StatusValid, c.ID, time.Time{}
				if err := s.CompleteOrder(ctx, o, c); err != nil {
					b.Fatal(err)
				}
				if _, err := s.GetOrder(ctx, o.ID); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
