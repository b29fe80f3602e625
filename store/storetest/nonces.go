package storetest

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/policyca/policyca/store"
)

var nonceTests = []subtest{
	{"SecretCreatedOnce", testSecretCreatedOnce},
	{"SecretConcurrent", testSecretConcurrent},
	{"SecretGenError", testSecretGenError},
	{"RedeemOnce", testRedeemOnce},
	{"RedeemConcurrent", testRedeemConcurrent},
	{"Prune", testPruneNonces},
}

func testSecretCreatedOnce(t *testing.T, s store.Store) {
	calls := 0
	gen := func(b byte) func() ([]byte, error) {
		return func() ([]byte, error) {
			calls++
			return bytes.Repeat([]byte{b}, 32), nil
		}
	}
	first, err := s.ClusterSecret(ctxT(t), "nonce", gen(1))
	noErr(t, "ClusterSecret", err)
	if !bytes.Equal(first, bytes.Repeat([]byte{1}, 32)) {
		t.Fatalf("first secret = %x", first)
	}
	again, err := s.ClusterSecret(ctxT(t), "nonce", gen(2))
	noErr(t, "ClusterSecret again", err)
	if !bytes.Equal(again, first) {
		t.Fatalf("stored secret replaced: %x, want %x", again, first)
	}
	if calls != 1 {
		t.Fatalf("gen called %d times, want 1 (only while the secret was missing)", calls)
	}
	other, err := s.ClusterSecret(ctxT(t), "other", gen(3))
	noErr(t, "ClusterSecret other", err)
	if !bytes.Equal(other, bytes.Repeat([]byte{3}, 32)) {
		t.Fatalf("secrets of different names are not independent: %x", other)
	}
}

// testSecretConcurrent: callers racing on a missing secret all get the
// same one, although each generated its own.
func testSecretConcurrent(t *testing.T, s store.Store) {
	const n = 8
	got := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			got[i], errs[i] = s.ClusterSecret(ctxT(t), "race", func() ([]byte, error) {
				return bytes.Repeat([]byte{byte(i + 1)}, 32), nil
			})
		})
	}
	wg.Wait()
	for i := range n {
		noErr(t, "ClusterSecret", errs[i])
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("caller %d got %x, caller 0 got %x", i, got[i], got[0])
		}
	}
}

func testSecretGenError(t *testing.T, s store.Store) {
	boom := errors.New("no entropy")
	if _, err := s.ClusterSecret(ctxT(t), "x", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the generator's error", err)
	}
	if _, err := s.ClusterSecret(ctxT(t), "x", func() ([]byte, error) { return nil, nil }); err == nil {
		t.Fatal("an empty secret was accepted")
	}
	// Nothing was stored by the failures.
	sec, err := s.ClusterSecret(ctxT(t), "x", func() ([]byte, error) { return []byte("k"), nil })
	noErr(t, "ClusterSecret", err)
	if string(sec) != "k" {
		t.Fatalf("secret = %q", sec)
	}
}

func testRedeemOnce(t *testing.T, s store.Store) {
	exp := time.Now().Add(time.Hour)
	noErr(t, "RedeemNonce", s.RedeemNonce(ctxT(t), "nonce-a", exp))
	noErr(t, "RedeemNonce other", s.RedeemNonce(ctxT(t), "nonce-b", exp))
	wantErr(t, "RedeemNonce replay", s.RedeemNonce(ctxT(t), "nonce-a", exp), store.ErrConflict)
	// Case matters: nonces are base64url.
	noErr(t, "RedeemNonce other case", s.RedeemNonce(ctxT(t), "NONCE-A", exp))
}

func testRedeemConcurrent(t *testing.T, s store.Store) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.RedeemNonce(ctxT(t), "contested", time.Now().Add(time.Hour)) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("RedeemNonce: %v, want nil or ErrConflict", err)
		}
	}
	if ok != 1 {
		t.Fatalf("nonce redeemed %d times, want 1", ok)
	}
}

func testPruneNonces(t *testing.T, s store.Store) {
	now := time.Now()
	noErr(t, "old", s.RedeemNonce(ctxT(t), "old", now.Add(-time.Minute)))
	noErr(t, "older", s.RedeemNonce(ctxT(t), "older", now.Add(-time.Hour)))
	noErr(t, "fresh", s.RedeemNonce(ctxT(t), "fresh", now.Add(time.Hour)))
	n, err := s.PruneNonces(ctxT(t), now)
	noErr(t, "PruneNonces", err)
	if n != 2 {
		t.Fatalf("pruned %d, want 2", n)
	}
	// Pruned records no longer block; kept ones still do. (A nonce whose
	// record is pruned is refused by its age before it reaches the store.)
	noErr(t, "RedeemNonce pruned", s.RedeemNonce(ctxT(t), "old", now.Add(time.Hour)))
	wantErr(t, "RedeemNonce kept", s.RedeemNonce(ctxT(t), "fresh", now.Add(time.Hour)), store.ErrConflict)
	n, err = s.PruneNonces(ctxT(t), now)
	noErr(t, "PruneNonces again", err)
	if n != 0 {
		t.Fatalf("second prune deleted %d, want 0", n)
	}
}
