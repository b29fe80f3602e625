package nonce_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/policyca/policyca/acme/nonce"
	"github.com/policyca/policyca/core"
)

func newMemory(t testing.TB, prefix string, n int) *nonce.Memory {
	t.Helper()
	m, err := nonce.NewMemoryWithPrefix(prefix, n)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func issue(t testing.TB, m *nonce.Memory) string {
	t.Helper()
	n, err := m.Nonce(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func wantBadNonce(t *testing.T, err error) {
	t.Helper()
	var e *core.Error
	if !errors.As(err, &e) || e.Kind != core.KindBadNonce || e.Detail == "" {
		t.Fatalf("got %v, want a badNonce *core.Error", err)
	}
}

func TestNewMemoryRefuses(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		n      int
	}{
		{"zero window", "", 0},
		{"negative window", "", -1},
		{"huge window", "", nonce.MaxOutstanding + 1},
		{"prefix not a multiple of 4", "abc", 10},
		{"prefix not base64url", "ab+/", 10},
		{"prefix too long", strings.Repeat("abcd", 5), 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if m, err := nonce.NewMemoryWithPrefix(tc.prefix, tc.n); err == nil {
				t.Fatalf("got %v, want an error", m)
			}
		})
	}
}

func TestNonceForm(t *testing.T) {
	for _, prefix := range []string{"", "node", "n0de-1_2ABCDEFG"[:12]} {
		t.Run(prefix, func(t *testing.T) {
			m := newMemory(t, prefix, 100)
			if m.Prefix() != prefix {
				t.Fatalf("Prefix = %q", m.Prefix())
			}
			seen := map[string]bool{}
			for range 100 {
				n := issue(t, m)
				if !strings.HasPrefix(n, prefix) {
					t.Fatalf("nonce %q lacks prefix %q", n, prefix)
				}
				// RFC 8555 §6.5.1: the nonce is a base64url string.
				if _, err := base64.RawURLEncoding.DecodeString(n); err != nil {
					t.Fatalf("nonce %q is not base64url: %v", n, err)
				}
				if seen[n] {
					t.Fatalf("nonce %q issued twice", n)
				}
				seen[n] = true
			}
		})
	}
}

func TestRedeemOnce(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t, "", 64)
	nonces := make([]string, 50)
	for i := range nonces {
		nonces[i] = issue(t, m)
	}
	// Out of order, as concurrent clients redeem them.
	for i := len(nonces) - 1; i >= 0; i-- {
		if err := m.Redeem(ctx, nonces[i]); err != nil {
			t.Fatalf("nonce %d: %v", i, err)
		}
	}
	for i, n := range nonces {
		if err := m.Redeem(ctx, n); err == nil {
			t.Fatalf("nonce %d redeemed twice", i)
		} else {
			wantBadNonce(t, err)
		}
	}
}

func TestRedeemRefuses(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t, "abcd", 10)
	other := newMemory(t, "abcd", 10) // same prefix, other key
	good := issue(t, m)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name  string
		nonce string
	}{
		{"empty", ""},
		{"prefix only", "abcd"},
		{"other prefix", "wxyz" + good[4:]},
		{"no prefix", good[4:]},
		{"garbage", "abcd!!!!!!!!!!!!!!!!!!!!!!"},
		{"too short", good[:len(good)-1]},
		{"too long", good + "A"},
		{"padded", good + "=="},
		{"first character changed", flip(good, 4)},
		{"last character changed", flip(good, len(good)-1)},
		{"from another key", issue(t, other)},
		{"non-canonical base64", good[:len(good)-1] + nonCanonical(good[len(good)-1])},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantBadNonce(t, m.Redeem(ctx, tc.nonce))
		})
	}
	// None of the refusals used up the real nonce.
	if err := m.Redeem(ctx, good); err != nil {
		t.Fatalf("good nonce: %v", err)
	}
}

// nonCanonical returns another spelling of the last character of a 16-byte
// base64url encoding (22 characters, 4 unused bits).
func nonCanonical(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return string(alphabet[strings.IndexByte(alphabet, c)^1])
}

func TestRedeemTooOld(t *testing.T) {
	ctx := context.Background()
	const window = 64 // a multiple of 64: exactly the window
	tests := []struct {
		name  string
		after int // nonces issued after the one redeemed
		ok    bool
	}{
		{"newest", 0, true},
		{"at the edge of the window", window - 1, true},
		{"just outside", window, false},
		{"far outside", 10 * window, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemory(t, "", window)
			n := issue(t, m)
			for range tc.after {
				issue(t, m)
			}
			err := m.Redeem(ctx, n)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantBadNonce(t, err)
		})
	}
}

func TestRedeemAfterWindowWraps(t *testing.T) {
	// A slot reused by a newer counter must start unused even though the
	// older counter in it was redeemed.
	ctx := context.Background()
	m := newMemory(t, "", 64)
	for round := range 5 {
		batch := make([]string, 64)
		for i := range batch {
			batch[i] = issue(t, m)
		}
		for i, n := range batch {
			if err := m.Redeem(ctx, n); err != nil {
				t.Fatalf("round %d nonce %d: %v", round, i, err)
			}
		}
	}
}

func TestConcurrent(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t, "", 1<<16)
	const workers, each = 8, 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	all := make([]string, 0, workers*each)
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]string, 0, each)
			for range each {
				n, err := m.Nonce(ctx)
				if err != nil {
					errs <- err
					return
				}
				if err := m.Redeem(ctx, n); err != nil {
					errs <- err
					return
				}
				mine = append(mine, n)
			}
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every nonce is distinct and now refused, redeemed concurrently.
	seen := make(map[string]bool, len(all))
	for _, n := range all {
		if seen[n] {
			t.Fatalf("nonce %q issued twice", n)
		}
		seen[n] = true
	}
	var refused sync.WaitGroup
	for w := range workers {
		refused.Add(1)
		go func() {
			defer refused.Done()
			for i := w; i < len(all); i += workers {
				if err := m.Redeem(ctx, all[i]); err == nil {
					t.Errorf("nonce %d redeemed twice", i)
				}
			}
		}()
	}
	refused.Wait()
}

func TestConcurrentRedeemOfOneNonce(t *testing.T) {
	ctx := context.Background()
	m := newMemory(t, "", 16)
	for range 20 {
		n := issue(t, m)
		var wg sync.WaitGroup
		results := make(chan error, 8)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- m.Redeem(ctx, n)
			}()
		}
		wg.Wait()
		close(results)
		accepted := 0
		for err := range results {
			if err == nil {
				accepted++
			}
		}
		if accepted != 1 {
			t.Fatalf("nonce accepted %d times", accepted)
		}
	}
}

func BenchmarkNonce(b *testing.B) {
	m := newMemory(b, "node", 1<<20)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Nonce(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkNonceRedeem(b *testing.B) {
	m := newMemory(b, "node", 1<<20)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n, err := m.Nonce(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Redeem(ctx, n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func FuzzRedeem(f *testing.F) {
	m := newMemory(f, "node", 64)
	for range 4 {
		f.Add(issue(f, m))
	}
	f.Add("")
	f.Add("node")
	f.Add("nodeAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		// Fresh state per input would hide replays; a fuzzer that finds a
		// string this Memory accepts has forged a nonce (or found one it
		// issued), so both must be refused except for nonces it issued.
		fresh := newMemory(t, "node", 64)
		if err := fresh.Redeem(context.Background(), s); err == nil {
			t.Fatalf("accepted %q that it never issued", s)
		} else {
			wantBadNonce(t, err)
		}
		err := m.Redeem(context.Background(), s)
		if err != nil {
			wantBadNonce(t, err)
		} else if err := m.Redeem(context.Background(), s); err == nil {
			t.Fatalf("%q accepted twice", s)
		}
	})
}
