// Package store declares the persistence contract shared by every backend
// (SQLite now, PostgreSQL later). Backends live in sub-packages and all pass
// the contract suite in store/storetest. The interface uses no
// backend-specific semantics: every multi-row change is one transaction,
// every update of a mutable object is checked against its Version.
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
	// KeyThumbprint belongs to another account.
	UpdateAccount(ctx context.Context, a *core.Account) error

	// CreateOrder inserts an order and its authorizations in one
	// transaction (all Versions become 1).
	CreateOrder(ctx context.Context, o *core.Order, authzs []*core.Authorization) error
	GetOrder(ctx context.Context, id string) (*core.Order, error)
	// UpdateOrder: same version check as UpdateAccount.
	UpdateOrder(ctx context.Context, o *core.Order) error
	// ListOrderIDs returns the IDs of an account's orders, oldest first,
	// starting after the cursor ("" = from the start), at most limit; next
	// is "" when there are no more.
	ListOrderIDs(ctx context.Context, accountID, cursor string, limit int) (ids []string, next string, err error)
	// ListStaleProcessingOrders returns orders in "processing" whose
	// ProcessingSince is before the given time (crash recovery).
	ListStaleProcessingOrders(ctx context.Context, before time.Time) ([]*core.Order, error)

	GetAuthorization(ctx context.Context, id string) (*core.Authorization, error)
	// GetAuthorizations returns the given authorizations in the given order.
	GetAuthorizations(ctx context.Context, ids []string) ([]*core.Authorization, error)
	// UpdateAuthorization: same version check as UpdateAccount.
	UpdateAuthorization(ctx context.Context, a *core.Authorization) error

	// PutCertificate stores an issued certificate (the CA's record).
	// ErrDuplicateSerial if the serial exists with a different ID; storing
	// the same certificate (same ID and serial) twice is a no-op.
	PutCertificate(ctx context.Context, c *core.Certificate) error
	// CompleteOrder stores c (as PutCertificate) and writes o (as
	// UpdateOrder) in one transaction.
	CompleteOrder(ctx context.Context, o *core.Order, c *core.Certificate) error
	GetCertificate(ctx context.Context, id string) (*core.Certificate, error)
	GetCertificateBySerial(ctx context.Context, serial string) (*core.Certificate, error)
	// RevokeCertificate marks the certificate revoked. ErrNotFound,
	// ErrAlreadyRevoked.
	RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time) error
	// ListRevoked returns revoked certificates that have not expired at
	// the given time (for CRLs).
	ListRevoked(ctx context.Context, notExpiredAt time.Time) ([]*core.Certificate, error)

	// Ping checks the database is reachable (health checks).
	Ping(ctx context.Context) error
	Close() error
}
