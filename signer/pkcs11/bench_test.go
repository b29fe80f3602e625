//go:build cgo && !nopkcs11

package pkcs11

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"testing"

	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/softhsm/softhsmtest"
)

// Signing throughput, software key against SoftHSM2 keys, alone and with 8
// concurrent signers (the CA signs certificates for concurrent finalize
// requests). Run with:
//
//	go test -run '^$' -bench BenchmarkSign -benchtime 3s ./signer/pkcs11/
//
// "serial" is one goroutine; "parallel8" is RunParallel with
// SetParallelism chosen for 8 goroutines (reported as the goroutines
// metric: with GOMAXPROCS not dividing 8 it is the next multiple).

func BenchmarkSignSoftP256(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	benchSign(b, key)
}

func BenchmarkSignHSMP256(b *testing.B) { benchHSM(b, pki.ECDSAP256) }

func BenchmarkSignHSMRSA2048(b *testing.B) { benchHSM(b, pki.RSA2048) }

func benchHSM(b *testing.B, spec pki.KeySpec) {
	_, tokenURI := softhsmtest.NewToken(b, "bench")
	s, err := GenerateKey(context.Background(), softhsmtest.KeyURI(tokenURI, "k"), spec)
	if err != nil {
		b.Fatal(err)
	}
	defer s.(*Signer).Close()
	benchSign(b, s)
}

func benchSign(b *testing.B, s crypto.Signer) {
	digest := sha256.Sum256([]byte("tbsCertificate"))
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel8", func(b *testing.B) {
		procs := runtime.GOMAXPROCS(0)
		p := (8 + procs - 1) / procs
		b.SetParallelism(p)
		b.ReportMetric(float64(p*procs), "goroutines")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Sign(rand.Reader, digest[:], crypto.SHA256); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
