package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"github.com/policyca/policyca/core"
)

// CRLRefresh is how long a CA reuses the CRL it signed: a revocation made
// by this CA is listed at once (it drops the saved CRL); one made by
// another node sharing the store, within CRLRefresh. Without it every
// unauthenticated GET of the CRL would cost a scan of the revoked
// certificates and a signature (on the HSM, with PKCS#11).
const CRLRefresh = time.Minute

// crlCache is the CRL this CA signed last. mu serialises building one
// (concurrent callers wait and share the result); revocations never wait
// for it: they only move gen on.
type crlCache struct {
	// gen counts the revocations made by this CA.
	gen atomic.Uint64
	mu  sync.Mutex
	der []byte
	// made is when der was signed, and madeGen the gen read before the
	// revoked certificates were listed for it.
	made    time.Time
	madeGen uint64
	// number is the last CRL number used, so that numbers grow on this
	// node even if its clock steps back.
	number *big.Int
}

// dropCRL makes the next CRL call sign a new CRL (after a revocation).
func (c *CA) dropCRL() { c.crl.gen.Add(1) }

// CRL returns a DER CRL signed by the issuer, listing the certificates
// revoked and not yet expired, or expired less than one CRL validity
// period ago (RFC 5280 §3.3: an entry stays until it has appeared on a CRL
// issued after the certificate expired). Its thisUpdate is backdated, but
// never before the latest revocation it lists (§5.1.2.4, §5.1.2.6). Its
// number is the issue time in nanoseconds, and more than the last number
// this CA used: it grows without shared state between CA nodes as long as
// their clocks agree (§5.2.3 only asks that it increase). The CRL is
// reused for CRLRefresh.
func (c *CA) CRL(ctx context.Context) ([]byte, error) {
	c.crl.mu.Lock()
	defer c.crl.mu.Unlock()
	now := c.now().UTC()
	gen := c.crl.gen.Load()
	if c.crl.der != nil && c.crl.madeGen == gen && now.Sub(c.crl.made) < CRLRefresh && !now.Before(c.crl.made) {
		return c.crl.der, nil
	}
	revoked, err := c.store.ListRevoked(ctx, now.Add(-c.crlValidity))
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot list revoked certificates")
	}
	thisUpdate := now.Add(-c.backdate).Truncate(time.Second)
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, core.Wrap(core.KindServerInternal, fmt.Errorf("bad serial %q in store", r.Serial), "cannot build CRL")
		}
		at := r.RevokedAt.UTC().Truncate(time.Second)
		if at.After(thisUpdate) {
			thisUpdate = at
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   n,
			RevocationTime: at,
			// Zero (unspecified) is left out of the CRL, as RFC 5280
			// §5.3.1 asks.
			ReasonCode: r.RevocationReason,
		})
	}
	number := big.NewInt(now.UnixNano())
	if c.crl.number != nil && number.Cmp(c.crl.number) <= 0 {
		number = new(big.Int).Add(c.crl.number, big.NewInt(1))
	}
	tmpl := &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(c.crlValidity),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, c.issuer, c.signer)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot sign CRL")
	}
	c.crl.der, c.crl.made, c.crl.madeGen, c.crl.number = der, now, gen, number
	return der, nil
}
