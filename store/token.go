package store

import (
	"crypto/subtle"
	"fmt"
	"time"

	"github.com/policyca/policyca/core"
)

// Redeemable says why t cannot be redeemed with secretHash at now (nil if
// it can), wrapping ErrTokenUnusable. Both backends check it inside the
// enrolment's transaction; the RA API checks it before the RA CA signs.
func Redeemable(t *core.RAToken, secretHash []byte, now time.Time) error {
	// Constant time: the comparison must not tell an attacker how much of
	// a guessed secret was right.
	switch {
	case subtle.ConstantTimeCompare(t.SecretHash, secretHash) != 1:
		return fmt.Errorf("%w: wrong secret", ErrTokenUnusable)
	case !t.UsedAt.IsZero():
		return fmt.Errorf("%w: already used", ErrTokenUnusable)
	case !now.Before(t.ExpiresAt):
		return fmt.Errorf("%w: expired", ErrTokenUnusable)
	}
	return nil
}
