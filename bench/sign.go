package bench

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// DefaultSignDuration is how long Sign runs when no duration is given.
const DefaultSignDuration = 10 * time.Second

// SignOptions configure a signing run.
type SignOptions struct {
	Signer      crypto.Signer
	Concurrency int
	// Duration bounds the run; N, if positive, also stops it after N
	// signatures, whichever comes first.
	Duration time.Duration
	N        int
}

// SignResult is the outcome of Sign.
type SignResult struct {
	Algorithm   string        `json:"algorithm"`
	Concurrency int           `json:"concurrency"`
	Signatures  int           `json:"signatures"`
	Failed      int           `json:"failed"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	Rate        float64       `json:"signatures_per_second"`
	Latency     Latency       `json:"latency"`
	Errors      []ErrorCount  `json:"errors"`
	// ClientCPU is this process's CPU: for a software key it is the cost
	// of signing; for an HSM, the cost of talking to it.
	ClientCPU CPUUsage `json:"client_cpu"`
}

// Sign signs SHA-256 digests with o.Signer from o.Concurrency goroutines,
// as the CA does when it issues (one signature per certificate). It works
// with any crypto.Signer, so with any key URI scheme that signer.Open
// knows. The first signature is verified against the public key, so a
// backend that returns garbage fast is not reported as fast.
func Sign(ctx context.Context, o SignOptions) (*SignResult, error) {
	if o.Signer == nil {
		return nil, errors.New("bench: no signer")
	}
	if o.Concurrency < 1 {
		return nil, errors.New("bench: concurrency must be at least 1")
	}
	if o.Duration <= 0 {
		o.Duration = DefaultSignDuration
	}
	alg, opts, err := describeKey(o.Signer.Public())
	if err != nil {
		return nil, err
	}
	if err := signAndVerify(o.Signer, opts); err != nil {
		return nil, err
	}

	r := repeat(ctx, o.Concurrency, o.Duration, o.N, "sign", "signError", func(i int64) error {
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], uint64(i))
		d := sha256.Sum256(buf[:])
		_, err := o.Signer.Sign(rand.Reader, d[:], opts)
		return err
	})
	return &SignResult{
		Algorithm:   alg,
		Concurrency: o.Concurrency,
		Signatures:  len(r.lat),
		Failed:      r.failed,
		Elapsed:     r.elapsed,
		Rate:        rate(len(r.lat), r.elapsed),
		Latency:     summarize(r.lat),
		Errors:      r.hist.rows(),
		ClientCPU:   r.cpu,
	}, nil
}

// describeKey names the key and picks the SignerOpts the CA would use.
func describeKey(pub crypto.PublicKey) (string, crypto.SignerOpts, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name + " SHA-256", crypto.SHA256, nil
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d PKCS#1 v1.5 SHA-256", k.N.BitLen()), crypto.SHA256, nil
	case ed25519.PublicKey:
		// Ed25519 signs the message itself; a 32-byte digest is the
		// message here, which costs the same as signing a TBS hash.
		return "Ed25519", crypto.Hash(0), nil
	}
	return "", nil, fmt.Errorf("bench: unsupported public key type %T", pub)
}

func signAndVerify(s crypto.Signer, opts crypto.SignerOpts) error {
	d := sha256.Sum256([]byte("policyca bench sign check"))
	sig, err := s.Sign(rand.Reader, d[:], opts)
	if err != nil {
		return fmt.Errorf("bench: first signature: %w", err)
	}
	ok := false
	switch k := s.Public().(type) {
	case *ecdsa.PublicKey:
		ok = ecdsa.VerifyASN1(k, d[:], sig)
	case *rsa.PublicKey:
		ok = rsa.VerifyPKCS1v15(k, crypto.SHA256, d[:], sig) == nil
	case ed25519.PublicKey:
		ok = ed25519.Verify(k, d[:], sig)
	}
	if !ok {
		return errors.New("bench: the signer's first signature does not verify with its public key")
	}
	return nil
}
