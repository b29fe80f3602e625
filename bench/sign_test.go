package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/signer"
	"github.com/policyca/policyca/signer/soft"
)

// A soft key file opened through its URI, as `policyca bench sign` does.
func TestSignSoftKeys(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]crypto.Signer{"ecdsa": ec, "ed25519": ed, "rsa": rk} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "key.pem")
			if err := soft.WriteKey(path, k, nil); err != nil {
				t.Fatal(err)
			}
			s, err := signer.Open(context.Background(), soft.URI(path, ""))
			if err != nil {
				t.Fatal(err)
			}
			res, err := Sign(context.Background(), SignOptions{Signer: s, Concurrency: 3, N: 60, Duration: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if res.Signatures != 60 || res.Failed != 0 || res.Latency.Count != 60 || res.Rate <= 0 {
				t.Errorf("result %+v, want 60 signatures and no failures", res)
			}
			var b strings.Builder
			res.WriteText(&b)
			if !strings.Contains(b.String(), "signatures/s") {
				t.Errorf("report:\n%s", b.String())
			}
		})
	}
}

// badSigner signs with another key than the one it claims.
type badSigner struct{ crypto.Signer }

func (b badSigner) Public() crypto.PublicKey {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return other.Public()
}

// flakySigner fails every other signature.
type flakySigner struct {
	crypto.Signer
	n chan struct{}
}

func (f *flakySigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	select {
	case f.n <- struct{}{}:
		return nil, errors.New("device busy")
	default:
		<-f.n
		return f.Signer.Sign(r, d, o)
	}
}

func TestSignErrors(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if _, err := Sign(context.Background(), SignOptions{Signer: badSigner{k}, Concurrency: 1, N: 1}); err == nil {
		t.Error("a signer whose signatures do not verify was benchmarked")
	}
	if _, err := Sign(context.Background(), SignOptions{Concurrency: 1}); err == nil {
		t.Error("nil signer accepted")
	}
	if _, err := Sign(context.Background(), SignOptions{Signer: k}); err == nil {
		t.Error("zero concurrency accepted")
	}
	// Failures during the run are counted, not fatal. The first (check)
	// signature succeeds because the channel starts full.
	f := &flakySigner{Signer: k, n: make(chan struct{}, 1)}
	f.n <- struct{}{}
	res, err := Sign(context.Background(), SignOptions{Signer: f, Concurrency: 1, N: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != 5 || res.Signatures != 5 || len(res.Errors) != 1 || res.Errors[0].Example != "device busy" {
		t.Errorf("failed %d signatures %d errors %+v, want 5/5/device busy", res.Failed, res.Signatures, res.Errors)
	}
}
