package acme

import (
	"context"
	"crypto/x509"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/policyca/policyca/core"
)

// Authority signs and revokes. In one process it is *ca.CA; behind an RA it
// is the remote CA client. Both return *core.Error for refusals.
type Authority interface {
	// Sign checks the request, signs, stores the certificate and returns
	// its record (ChainPEM filled in).
	Sign(ctx context.Context, req core.SignRequest) (*core.Certificate, error)
	// Revoke revokes by serial (lower-case hex). core.KindAlreadyRevoked,
	// core.KindNotFound.
	Revoke(ctx context.Context, serial string, reason int) error
	// Issuer returns the certificate that signs leaf certificates.
	Issuer() *x509.Certificate
}

// Validator checks one challenge for one provisioner. It returns nil when the
// challenge is fulfilled, or a *core.Error of kind connection, dns, tls,
// incorrectResponse or unauthorized.
type Validator interface {
	Validate(ctx context.Context, in core.ChallengeInput) error
}

// OrderPolicy decides at newOrder time. A nil OrderPolicy allows everything
// (the policy issue plugs the Rego engine in here).
type OrderPolicy interface {
	// CheckOrder returns nil if the order is allowed, or a *core.Error of
	// kind rejectedIdentifier with one subproblem per refused identifier.
	CheckOrder(ctx context.Context, prov string, acct *core.Account, ids []core.Identifier) error
}

// NonceSource issues and redeems anti-replay nonces.
type NonceSource interface {
	Nonce(ctx context.Context) (string, error)
	// Redeem accepts a nonce once; anything else is a *core.Error of kind
	// badNonce.
	Redeem(ctx context.Context, nonce string) error
}

// AccountBinder verifies an External Account Binding (RFC 8555 §7.3.4) and
// creates the account bound to its key, atomically: of concurrent requests
// with one key, one account results. In one process it is *eab.Binder over
// the CA's store; behind an RA it is the remote CA. Refusals are *core.Error.
type AccountBinder interface {
	CreateBoundAccount(ctx context.Context, acct *core.Account, binding []byte, outerKey *jose.JSONWebKey, url string) error
}
