package eab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// Store is what the binder needs from persistence.
type Store interface {
	GetEABKey(ctx context.Context, id string) (*core.EABKey, error)
	CreateAccountBound(ctx context.Context, a *core.Account, kid string, now time.Time) error
}

// Binder verifies bindings against the CA's own keys and creates bound
// accounts. It implements the ACME front end's account binder.
type Binder struct {
	Store Store
	Now   func() time.Time
}

func (b *Binder) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

// CreateBoundAccount verifies the binding JWS raw (sent to url, with the
// outer JWS signed by outerKey) and creates acct bound to its key id, in one
// transaction: of concurrent requests with one key, one account results.
func (b *Binder) CreateBoundAccount(ctx context.Context, acct *core.Account, raw []byte, outerKey *jose.JSONWebKey, url string) error {
	bind, err := Parse(raw, outerKey, url)
	if err != nil {
		return err
	}
	k, err := b.Store.GetEABKey(ctx, bind.KID)
	if errors.Is(err, store.ErrNotFound) {
		return core.Errorf(core.KindUnauthorized, "unknown external account key id %q", bind.KID)
	}
	if err != nil {
		return core.Wrap(core.KindServerInternal, err, "cannot look up the external account key")
	}
	// The MAC first: nothing about a key's state is revealed to a client
	// that cannot prove it holds the secret.
	if err := bind.Verify(k.HMACKey); err != nil {
		return err
	}
	now := b.now()
	if err := Usable(k, acct.Provisioner, now); err != nil {
		return err
	}
	err = b.Store.CreateAccountBound(ctx, acct, k.ID, now)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrEABUnusable):
		// Lost a race with another binding of the same key.
		return core.Errorf(core.KindUnauthorized, "external account key %q is already bound to an account", k.ID)
	case errors.Is(err, store.ErrConflict):
		return core.Wrap(core.KindConflict, err, "an account already exists for this key")
	case errors.Is(err, store.ErrNotFound):
		return core.Errorf(core.KindUnauthorized, "unknown external account key id %q", bind.KID)
	}
	return core.Wrap(core.KindServerInternal, err, "cannot create the account")
}

// Usable says why a key cannot bind an account of provisioner now, or nil.
func Usable(k *core.EABKey, provisioner string, now time.Time) error {
	switch {
	case k.Provisioner != provisioner:
		return core.Errorf(core.KindUnauthorized, "external account key %q belongs to another provisioner", k.ID)
	case !k.RevokedAt.IsZero():
		return core.Errorf(core.KindUnauthorized, "external account key %q is revoked", k.ID)
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return core.Errorf(core.KindUnauthorized, "external account key %q expired at %s", k.ID, k.ExpiresAt.UTC().Format(time.RFC3339))
	case k.BoundAccount != "":
		return core.Errorf(core.KindUnauthorized, "external account key %q is already bound to an account", k.ID)
	}
	return nil
}

// NewKey makes a key for provisioner: a random key id and a 256-bit HMAC
// secret.
func NewKey(provisioner, reference string, expires time.Time, policy []byte) (*core.EABKey, error) {
	var id [12]byte
	secret := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	if provisioner == "" {
		return nil, fmt.Errorf("eab: a key needs a provisioner")
	}
	return &core.EABKey{
		ID:          "kid-" + base64.RawURLEncoding.EncodeToString(id[:]),
		Provisioner: provisioner,
		Reference:   reference,
		HMACKey:     secret,
		ExpiresAt:   expires,
		Policy:      policy,
	}, nil
}

// EncodeHMAC is the form operators hand to clients (base64url, no padding,
// as certbot --eab-hmac-key and lego --hmac expect).
func EncodeHMAC(k []byte) string { return base64.RawURLEncoding.EncodeToString(k) }
