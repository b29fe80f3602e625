package core

import (
	"time"
)

// IdentifierType is an ACME identifier type.
type IdentifierType string

const (
	// DNS is a DNS name identifier (RFC 8555 §9.7.7).
	DNS IdentifierType = "dns"
	// IP is an IP address identifier (RFC 8738).
	IP IdentifierType = "ip"
)

// Identifier is an ACME identifier. Values stored in the system are always
// normalised (see NormalizeIdentifier).
type Identifier struct {
	Type  IdentifierType `json:"type"`
	Value string         `json:"value"`
}

// Status is the status of an ACME object (RFC 8555 §7.1.6).
type Status string

// Statuses of RFC 8555 §7.1.6.
const (
	StatusPending     Status = "pending"
	StatusReady       Status = "ready"
	StatusProcessing  Status = "processing"
	StatusValid       Status = "valid"
	StatusInvalid     Status = "invalid"
	StatusDeactivated Status = "deactivated"
	StatusRevoked     Status = "revoked"
	StatusExpired     Status = "expired"
)

// Account is an ACME account. Version is incremented by the store on every
// update and checked on write (optimistic concurrency).
type Account struct {
	ID          string
	Provisioner string
	// KeyThumbprint is the base64url RFC 7638 SHA-256 thumbprint of the key.
	KeyThumbprint string
	// KeyJWK is the account public key as a JSON Web Key.
	KeyJWK      []byte
	Contact     []string
	Status      Status
	TermsAgreed bool
	// EABKeyID is the External Account Binding key that bound this account, or "".
	EABKeyID  string
	CreatedAt time.Time
	Version   int64
}

// Order is an ACME order.
type Order struct {
	ID          string
	AccountID   string
	Provisioner string
	Status      Status
	Expires     time.Time
	Identifiers []Identifier
	// NotBefore and NotAfter are what the client asked for (zero if absent).
	NotBefore time.Time
	NotAfter  time.Time
	AuthzIDs  []string
	// CertificateID is set once the order is valid.
	CertificateID string
	// Error is set when the order became invalid.
	Error *Error
	// ProcessingSince is set when the order entered "processing".
	ProcessingSince time.Time
	CreatedAt       time.Time
	Version         int64
}

// Authorization is an ACME authorization; it belongs to one order.
type Authorization struct {
	ID         string
	AccountID  string
	OrderID    string
	Identifier Identifier
	Wildcard   bool
	Status     Status
	Expires    time.Time
	Challenges []Challenge
	Version    int64
}

// Challenge types.
const (
	ChallengeHTTP01    = "http-01"
	ChallengeDNS01     = "dns-01"
	ChallengeTLSALPN01 = "tls-alpn-01"
)

// Challenge is one way of proving control of an authorization's identifier.
// Challenges are stored inside their authorization.
type Challenge struct {
	ID        string
	Type      string
	Token     string
	Status    Status
	Validated time.Time
	// Started is when the challenge went to processing; it stays set
	// after the validation ends, and is zero for a challenge never
	// started and for one started before it was recorded. A validation
	// still processing long after it started was lost, as when the node
	// running it crashed (see expireLostValidations in package acme).
	Started time.Time
	Error   *Error
}

// Certificate is the CA's record of an issued certificate.
type Certificate struct {
	ID string
	// Serial is the lower-case hex serial number, without leading zeros.
	Serial      string
	AccountID   string
	OrderID     string
	Provisioner string
	// DER is the leaf certificate; ChainPEM is the PEM chain returned to
	// clients (leaf first, then the intermediates).
	DER       []byte
	ChainPEM  []byte
	NotBefore time.Time
	NotAfter  time.Time
	// Names are the certificate's SANs as identifiers.
	Names []Identifier
	// RevokedAt is zero unless the certificate is revoked.
	RevokedAt        time.Time
	RevocationReason int
	// PolicyRevision and DecisionID name the sign-time decision that allowed it.
	PolicyRevision string
	DecisionID     string
	CreatedAt      time.Time
}

// SignRequest is what the ACME front end (in-process, or an RA over the
// network) asks the CA to sign. The CA re-checks everything in it.
type SignRequest struct {
	// CSR is the DER-encoded PKCS#10 request from the finalize call.
	CSR         []byte
	OrderID     string
	AccountID   string
	Provisioner string
	// Identifiers are the order's validated identifiers (normalised).
	Identifiers []Identifier
	// NotBefore/NotAfter as requested in the order (zero if absent).
	NotBefore time.Time
	NotAfter  time.Time
	// AccountKeyJWK is the account's public key, so the CA can refuse a
	// CSR that reuses it.
	AccountKeyJWK []byte
	// RA names the relaying registration authority ("" in-process).
	RA string
}

// ChallengeInput is what a validator needs to check one challenge.
type ChallengeInput struct {
	Type       string
	Identifier Identifier
	Token      string
	// KeyAuthorization is token || '.' || base64url(JWK thumbprint).
	KeyAuthorization string
}
