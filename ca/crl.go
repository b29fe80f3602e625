package ca

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	"github.com/policyca/policyca/core"
)

// CRL returns a DER CRL signed by the issuer, listing the certificates
// revoked and not yet expired. Its number is the issue time in
// nanoseconds, which grows monotonically without shared state between CA
// nodes (RFC 5280 §5.2.3 only asks that it increase).
func (c *CA) CRL(ctx context.Context) ([]byte, error) {
	now := c.now().UTC()
	revoked, err := c.store.ListRevoked(ctx, now)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot list revoked certificates")
	}
	entries := make([]x509.RevocationListEntry, 0, len(revoked))
	for _, r := range revoked {
		n, ok := new(big.Int).SetString(r.Serial, 16)
		if !ok {
			return nil, core.Wrap(core.KindServerInternal, fmt.Errorf("bad serial %q in store", r.Serial), "cannot build CRL")
		}
		entries = append(entries, x509.RevocationListEntry{
			SerialNumber:   n,
			RevocationTime: r.RevokedAt.UTC(),
			// Zero (unspecified) is left out of the CRL, as RFC 5280
			// §5.3.1 asks.
			ReasonCode: r.RevocationReason,
		})
	}
	thisUpdate := now.Add(-c.backdate).Truncate(time.Second)
	tmpl := &x509.RevocationList{
		Number:                    big.NewInt(now.UnixNano()),
		ThisUpdate:                thisUpdate,
		NextUpdate:                thisUpdate.Add(c.crlValidity),
		RevokedCertificateEntries: entries,
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, c.issuer, c.signer)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot sign CRL")
	}
	return der, nil
}
