package ca

import (
	"context"
	"errors"
	"strings"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// RFC 5280 §5.3.1 reason codes.
const (
	ReasonUnspecified          = 0
	ReasonKeyCompromise        = 1
	ReasonCACompromise         = 2
	ReasonAffiliationChanged   = 3
	ReasonSuperseded           = 4
	ReasonCessationOfOperation = 5
	ReasonCertificateHold      = 6
	// 7 is unused in RFC 5280.
	ReasonRemoveFromCRL      = 8
	ReasonPrivilegeWithdrawn = 9
	ReasonAACompromise       = 10
)

// leafReasons are the reasons a leaf certificate may be revoked for.
// The others are refused whoever asks (an ACME client, an RA, an
// operator): cACompromise and aACompromise are about CAs and attribute
// authorities; certificateHold would need an unhold that policyca does not
// have (and the CA/Browser Forum baseline requirements forbid it);
// removeFromCRL is meaningful only in delta CRLs, and in a full CRL it
// tells relying parties the certificate is *not* revoked (OpenSSL reads
// it so), while a second revocation is refused as alreadyRevoked: a
// certificate revoked with it could never be revoked again. The ACME
// front end narrows this further to what a subscriber may say (acme/revoke.go).
var leafReasons = map[int]bool{
	ReasonUnspecified: true, ReasonKeyCompromise: true, ReasonAffiliationChanged: true,
	ReasonSuperseded: true, ReasonCessationOfOperation: true, ReasonPrivilegeWithdrawn: true,
}

// Revoke marks the certificate with this serial (hex, any case, leading
// zeros allowed) revoked for reason. Errors: badRevocationReason,
// malformed (bad serial), notFound, alreadyRevoked.
func (c *CA) Revoke(ctx context.Context, serial string, reason int) error {
	if !leafReasons[reason] {
		return core.Errorf(core.KindBadRevocationReason,
			"revocation reason %d is not allowed for a certificate this CA issued; use 0, 1, 3, 4, 5 or 9 (RFC 5280 §5.3.1)", reason)
	}
	s, err := normalizeSerial(serial)
	if err != nil {
		return err
	}
	switch err := c.store.RevokeCertificate(ctx, s, reason, c.now()); {
	case err == nil:
		c.log.InfoContext(ctx, "certificate revoked", "serial", s, "reason", reason)
		c.dropCRL()
		return nil
	case errors.Is(err, store.ErrAlreadyRevoked):
		return core.Errorf(core.KindAlreadyRevoked, "certificate %s is already revoked", s)
	case errors.Is(err, store.ErrNotFound):
		return core.Errorf(core.KindNotFound, "no certificate with serial %s", s)
	default:
		return core.Wrap(core.KindServerInternal, err, "cannot revoke the certificate")
	}
}

func normalizeSerial(s string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) == 0 || len(s) > 40 {
		return "", core.Errorf(core.KindMalformed, "invalid serial number")
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return "", core.Errorf(core.KindMalformed, "invalid serial number %q (want hex)", s)
		}
	}
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return "", core.Errorf(core.KindMalformed, "serial number zero is invalid")
	}
	return s, nil
}
