// Package store declares the persistence contract shared by every backend
// (SQLite now, PostgreSQL later). Backends live in sub-packages and all pass
// the contract suite in store/storetest. The interface uses no
// backend-specific semantics: every multi-row change is one transaction,
// every update of a mutable object is checked against its Version.
//
// Conventions shared by all methods (checked by store/storetest):
//   - Create/Put methods fill in an empty ID (random) and a zero CreatedAt
//     (now), write them back into the caller's struct on success, and leave
//     it untouched on failure.
//   - Times are returned in UTC, truncated to the microsecond
//     (storetest.TimePrecision); the zero time means "absent" and
//     round-trips as the zero time.
//   - Update methods write every field except ID, CreatedAt and the owning
//     IDs (AccountID, OrderID).
//   - Errors wrap the sentinels below; test them with errors.Is.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/policyca/policyca/core"
)

// Sentinel errors returned by every backend.
var (
	// ErrNotFound: no such object.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: an optimistic-concurrency check failed (the object's
	// Version changed since it was read), or a unique constraint (account
	// key thumbprint) was violated.
	ErrConflict = errors.New("store: conflict")
	// ErrDuplicateSerial: a certificate with this serial already exists.
	ErrDuplicateSerial = errors.New("store: duplicate serial")
	// ErrAlreadyRevoked: the certificate is already revoked.
	ErrAlreadyRevoked = errors.New("store: already revoked")
	// ErrEABUnusable: the EAB key cannot bind an account (it is revoked,
	// expired, or already bound). The wrapped text says which.
	ErrEABUnusable = errors.New("store: EAB key unusable")
	// ErrUnavailable: the database cannot be reached or cannot serve us
	// right now (connection refused or lost, server shutting down or in
	// recovery, out of connections, no answer in time). Nothing about the
	// request was wrong and a retry may succeed once the database is
	// back; the HTTP edge answers serverInternal with Retry-After. A write
	// that fails this way is whole or absent (one transaction each), and
	// the idempotent writes let a retry find out which.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrTokenUnusable: an RA enrolment token cannot be redeemed (already
	// used, expired, or the secret does not match).
	ErrTokenUnusable = errors.New("store: enrolment token unusable")
)

// Store is the full persistence interface. Packages that use it declare the
// narrower interface they need.
type Store interface {
	// CreateAccount inserts a new account (Version becomes 1). ErrConflict
	// if another account has the same KeyThumbprint.
	CreateAccount(ctx context.Context, a *core.Account) error
	GetAccount(ctx context.Context, id string) (*core.Account, error)
	GetAccountByThumbprint(ctx context.Context, thumbprint string) (*core.Account, error)
	// UpdateAccount writes a if its Version still matches the stored one,
	// then increments a.Version. ErrConflict otherwise, or if the new
	// KeyThumbprint belongs to another account; ErrNotFound if a is gone.
	UpdateAccount(ctx context.Context, a *core.Account) error

	// CreateOrder inserts an order and its authorizations in one
	// transaction (all Versions become 1). Each authorization's OrderID is
	// set to o.ID (AccountID to o.AccountID if empty). An empty o.AuthzIDs
	// becomes the authorizations' IDs; a non-empty one is kept, since an
	// order may reuse earlier authorizations. ErrNotFound if the account
	// does not exist; nothing is stored on any error.
	CreateOrder(ctx context.Context, o *core.Order, authzs []*core.Authorization) error
	GetOrder(ctx context.Context, id string) (*core.Order, error)
	// UpdateOrder: same version check as UpdateAccount.
	UpdateOrder(ctx context.Context, o *core.Order) error
	// ListOrderIDs returns the IDs of an account's orders, oldest first,
	// starting after the cursor ("" = from the start), at most limit; next
	// is "" when there are no more. The cursor is opaque (a next value);
	// an unknown one is ErrNotFound. limit < 1 is an error.
	//
	// Orders that are invalid at now are left out (RFC 8555 §7.1.2.1: the
	// list SHOULD NOT include invalid orders): those stored as "invalid",
	// and those stored as "pending" or "ready" whose Expires is set and
	// not after now (now >= the stored Expires), which the ACME layer
	// reads as invalid. Every other order is listed, whatever its
	// Expires. Orders left out do not count towards limit, and the cursor
	// rules do not change: a cursor naming an order of the account that is
	// now left out (it became invalid after the page that returned it)
	// still continues after that order.
	ListOrderIDs(ctx context.Context, accountID, cursor string, limit int, now time.Time) (ids []string, next string, err error)
	// ListStaleProcessingOrders returns orders in "processing" whose
	// ProcessingSince is before the given time (crash recovery). One in
	// "processing" with a zero ProcessingSince is always included.
	ListStaleProcessingOrders(ctx context.Context, before time.Time) ([]*core.Order, error)

	GetAuthorization(ctx context.Context, id string) (*core.Authorization, error)
	// GetAuthorizations returns the given authorizations in the given order.
	GetAuthorizations(ctx context.Context, ids []string) ([]*core.Authorization, error)
	// UpdateAuthorization: same version check as UpdateAccount.
	UpdateAuthorization(ctx context.Context, a *core.Authorization) error
	// HoldsValidAuthorization reports whether the account has an
	// authorization for id, with this wildcard flag, whose status is valid
	// and which expires after at. RFC 8555 §7.6 lets such an account revoke
	// a certificate for the name.
	HoldsValidAuthorization(ctx context.Context, accountID string, id core.Identifier, wildcard bool, at time.Time) (bool, error)

	// PutCertificate stores an issued certificate (the CA's record).
	// ErrDuplicateSerial if the serial exists with a different ID; storing
	// the same certificate (same ID and serial) twice is a no-op, so a
	// caller unsure whether a commit happened can retry. ErrConflict if the
	// ID exists with a different serial. No reference to an account or
	// order is required: a signed certificate must always be recordable.
	PutCertificate(ctx context.Context, c *core.Certificate) error
	// CompleteOrder stores c (as PutCertificate) and writes o (as
	// UpdateOrder) in one transaction: if o is stale (ErrConflict) or gone
	// (ErrNotFound), c is not stored either. The caller sets o's Status and
	// CertificateID.
	CompleteOrder(ctx context.Context, o *core.Order, c *core.Certificate) error
	GetCertificate(ctx context.Context, id string) (*core.Certificate, error)
	GetCertificateBySerial(ctx context.Context, serial string) (*core.Certificate, error)
	// GetCertificatesByOrder returns the certificates issued for an order,
	// oldest first (none: an empty list, no error). It makes signing
	// idempotent for a client that retries after a lost answer.
	GetCertificatesByOrder(ctx context.Context, orderID string) ([]*core.Certificate, error)
	// RevokeCertificate marks the certificate revoked at the given time
	// (now if zero). Serials are matched exactly (callers normalise to
	// lower-case hex). ErrNotFound, ErrAlreadyRevoked.
	RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time) error
	// ListRevoked returns revoked certificates that have not expired at
	// the given time (for CRLs).
	ListRevoked(ctx context.Context, notExpiredAt time.Time) ([]*core.Certificate, error)

	// CreateEABKey inserts a new EAB key (Version 1). ErrConflict if the
	// ID exists.
	CreateEABKey(ctx context.Context, k *core.EABKey) error
	GetEABKey(ctx context.Context, id string) (*core.EABKey, error)
	// ListEABKeys lists the keys of a provisioner ("" = all), oldest first.
	ListEABKeys(ctx context.Context, provisioner string) ([]*core.EABKey, error)
	// UpdateEABKey writes Reference, ExpiresAt, RevokedAt and Policy if
	// the Version matches (ErrConflict otherwise), then increments it.
	// Binding fields are only ever written by CreateAccountBound.
	UpdateEABKey(ctx context.Context, k *core.EABKey) error
	// CreateAccountBound creates the account and binds the EAB key kid to
	// it in one transaction: the key must exist (ErrNotFound), belong to
	// a.Provisioner (ErrEABUnusable), not be revoked, expired at now, or
	// bound (ErrEABUnusable). Of any number of concurrent calls with one
	// key, exactly one succeeds. Sets a.EABKeyID = kid. Binding
	// increments the key's Version.
	CreateAccountBound(ctx context.Context, a *core.Account, kid string, now time.Time) error

	// RecordDecisions appends entries to the decision log in one
	// transaction. Empty IDs are filled in, zero Times become now.
	RecordDecisions(ctx context.Context, recs []*core.DecisionRecord) error
	// ListDecisions returns entries matching f, newest first. Since is
	// inclusive; a Limit below 1 means 100, and at most 10000 are returned.
	ListDecisions(ctx context.Context, f core.DecisionFilter) ([]*core.DecisionRecord, error)

	// ClusterSecret returns the secret named name, shared by every node of
	// the database. The first caller to find it missing stores gen's
	// result; of concurrent first callers on any nodes exactly one value
	// wins and all of them get it. A stored secret is never replaced.
	ClusterSecret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
	// RedeemNonce records nonce as used until expires. ErrConflict if it
	// is already recorded (a replay), whichever node recorded it.
	RedeemNonce(ctx context.Context, nonce string, expires time.Time) error
	// PruneNonces deletes the records that expired before the given time
	// and returns how many it deleted.
	PruneNonces(ctx context.Context, before time.Time) (int64, error)

	RARegistry

	// Ping checks the database is reachable (health checks).
	Ping(ctx context.Context) error
	Close() error
}

// RARegistry is the CA's registry of registration authorities and their
// one-time enrolment tokens (DESIGN.md shape 2).
type RARegistry interface {
	// CreateRAToken inserts a token. ErrConflict if the ID exists.
	CreateRAToken(ctx context.Context, t *core.RAToken) error
	GetRAToken(ctx context.Context, id string) (*core.RAToken, error)
	// EnrolRA redeems token id in one transaction: the token must exist
	// (ErrNotFound), be unused, unexpired at now and its SecretHash equal
	// secretHash (compared in constant time), else ErrTokenUnusable. It
	// marks the token used and creates the RA named by the token, or
	// updates it (Provisioners from the token, EnrolledAt, CertSerial,
	// CertNotAfter from ra; DisabledAt is kept). Of concurrent calls with
	// one token exactly one succeeds. ra is filled with the stored record.
	EnrolRA(ctx context.Context, id string, secretHash []byte, now time.Time, ra *core.RA) error
	// GetRA returns the RA by name (ErrNotFound).
	GetRA(ctx context.Context, name string) (*core.RA, error)
	// ListRAs returns every RA, by name.
	ListRAs(ctx context.Context) ([]*core.RA, error)
	// UpdateRA writes Provisioners, DisabledAt, CertSerial and
	// CertNotAfter if the Version matches (ErrConflict otherwise,
	// ErrNotFound if gone), then increments it.
	UpdateRA(ctx context.Context, ra *core.RA) error
}
