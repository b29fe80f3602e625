package raapi

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// The operator's side of the registry: what `policyca ra token create`,
// `list`, `disable` and `enable` do on the CA host.

var raNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// DefaultTokenLifetime is how long an enrolment token stays redeemable.
const DefaultTokenLifetime = 24 * time.Hour

// TokenOptions describe a new enrolment token.
type TokenOptions struct {
	// Name of the RA (its certificates' common name).
	Name string
	// Provisioners the RA may use; each must exist on the CA.
	Provisioners []string
	// Known are the CA's provisioners.
	Known []string
	// Lifetime of the token (0 = DefaultTokenLifetime).
	Lifetime time.Duration
	// CAURL is the CA's base URL as the RA reaches it; Root the CA's root.
	CAURL string
	Root  *x509.Certificate
}

// CreateToken stores a token and returns it (the only time its secret
// exists outside the RA) with its record.
func CreateToken(ctx context.Context, st store.RARegistry, o TokenOptions) (Token, *core.RAToken, error) {
	if !raNameRE.MatchString(o.Name) {
		return Token{}, nil, fmt.Errorf("RA name %q: want lower-case letters, digits, '.', '_', '-'", o.Name)
	}
	if len(o.Provisioners) == 0 {
		return Token{}, nil, errors.New("an RA needs at least one provisioner")
	}
	for _, p := range o.Provisioners {
		if !slices.Contains(o.Known, p) {
			return Token{}, nil, fmt.Errorf("no provisioner %q on this CA (have %v)", p, o.Known)
		}
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultTokenLifetime
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return Token{}, nil, err
	}
	s := base64.RawURLEncoding.EncodeToString(secret)
	rec := &core.RAToken{
		RAName: o.Name, Provisioners: slices.Compact(slices.Sorted(slices.Values(o.Provisioners))),
		SecretHash: HashSecret(s), ExpiresAt: time.Now().Add(o.Lifetime),
	}
	if err := st.CreateRAToken(ctx, rec); err != nil {
		return Token{}, nil, err
	}
	return Token{CAURL: o.CAURL, RootSHA256: Fingerprint(o.Root.Raw), ID: rec.ID, Secret: s}, rec, nil
}

// SetDisabled disables (or enables) an RA. A disabled RA's next request is
// refused, whatever certificate it holds.
func SetDisabled(ctx context.Context, st store.RARegistry, name string, disabled bool) (*core.RA, error) {
	for range 3 {
		ra, err := st.GetRA(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("no RA named %q", name)
		}
		if err != nil {
			return nil, err
		}
		switch {
		case disabled && ra.DisabledAt.IsZero():
			ra.DisabledAt = time.Now()
		case !disabled && !ra.DisabledAt.IsZero():
			ra.DisabledAt = time.Time{}
		default:
			return ra, nil
		}
		err = st.UpdateRA(ctx, ra)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		return ra, err
	}
	return nil, errors.New("the RA changed concurrently; try again")
}
