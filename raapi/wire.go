package raapi

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/policyca/policyca/core"
)

// Prefix is where the API is mounted on the CA's listener. A change that
// is not backwards compatible gets a new version prefix.
const Prefix = "/ra/v1"

// tokenPrefix marks an enrolment token (and its format version).
const tokenPrefix = "pcra1."

// Token is what `policyca ra token create` prints: everything an RA needs
// to enrol, in one string an operator can paste into a script.
type Token struct {
	// CAURL is the CA's base URL (https://host:port).
	CAURL string `json:"u"`
	// RootSHA256 is the hex SHA-256 of the CA root's DER: the RA trusts
	// the CA's TLS certificate only if it chains to this root.
	RootSHA256 string `json:"f"`
	ID         string `json:"i"`
	// Secret is base64url; the CA stores only its SHA-256.
	Secret string `json:"s"`
}

// String encodes the token.
func (t Token) String() string {
	b, _ := json.Marshal(t)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken decodes a token string.
func ParseToken(s string) (Token, error) {
	var t Token
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	if !ok {
		return t, errors.New("not a policyca RA enrolment token (want pcra1.…)")
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return t, errors.New("enrolment token: not base64url")
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("enrolment token: %v", err)
	}
	u, err := url.Parse(t.CAURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return t, fmt.Errorf("enrolment token: CA URL %q is not https://host[:port]", t.CAURL)
	}
	if fp, err := hex.DecodeString(t.RootSHA256); err != nil || len(fp) != sha256.Size {
		return t, errors.New("enrolment token: bad root fingerprint")
	}
	if t.ID == "" || t.Secret == "" {
		return t, errors.New("enrolment token: no id or secret")
	}
	return t, nil
}

// HashSecret is what the CA stores of a token's secret.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// Fingerprint is the hex SHA-256 of a certificate's DER.
func Fingerprint(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// EnrollRequest redeems a token for the RA's first client certificate.
type EnrollRequest struct {
	TokenID string `json:"token_id"`
	Secret  string `json:"secret"`
	// CSR is the DER PKCS#10 request for the RA's client key; its subject
	// is ignored (the token names the RA).
	CSR []byte `json:"csr"`
}

// RenewRequest asks for a new client certificate, over mTLS with the
// current one.
type RenewRequest struct {
	CSR []byte `json:"csr"`
}

// ClientCertResponse answers enrolment and renewal.
type ClientCertResponse struct {
	// ChainPEM is the client certificate (the RA CA root is not sent: the
	// CA checks chains against it, the RA needs only the leaf).
	ChainPEM []byte `json:"chain_pem"`
	Config   RAInfo `json:"config"`
}

// ListenerCertRequest asks for the RA's HTTPS listener certificate, issued
// by the ACME issuer through the sign-time policy like any certificate.
type ListenerCertRequest struct {
	CSR         []byte `json:"csr"`
	Provisioner string `json:"provisioner"`
}

// RAInfo is what the CA tells an RA about itself.
type RAInfo struct {
	Name         string            `json:"name"`
	Provisioners []ProvisionerInfo `json:"provisioners"`
}

// ProvisionerInfo describes one provisioner assigned to the RA, so that
// the RA serves the same directory metadata as the CA.
type ProvisionerInfo struct {
	Name           string   `json:"name"`
	RequireEAB     bool     `json:"require_eab,omitempty"`
	TermsOfService string   `json:"terms_of_service,omitempty"`
	Website        string   `json:"website,omitempty"`
	CAAIdentities  []string `json:"caa_identities,omitempty"`
}

// SignRequest is core.SignRequest on the wire, plus what the RA believes
// about the account (checked by the CA) and its validation evidence.
type SignRequest struct {
	CSR           []byte            `json:"csr"`
	OrderID       string            `json:"order_id"`
	AccountID     string            `json:"account_id"`
	Provisioner   string            `json:"provisioner"`
	Identifiers   []core.Identifier `json:"identifiers"`
	NotBefore     time.Time         `json:"not_before,omitzero"`
	NotAfter      time.Time         `json:"not_after,omitzero"`
	AccountKeyJWK json.RawMessage   `json:"account_key_jwk"`
	// EABKeyID and AccountPolicy are the RA's claims; the CA refuses the
	// request if they differ from its own records.
	EABKeyID      string          `json:"eab_kid,omitempty"`
	AccountPolicy json.RawMessage `json:"account_policy,omitempty"`
	Evidence      []Evidence      `json:"evidence"`
}

// Evidence says how the RA validated one identifier.
type Evidence struct {
	Identifier core.Identifier `json:"identifier"`
	Challenge  string          `json:"challenge"`
	Validated  time.Time       `json:"validated"`
}

// Certificate is core.Certificate on the wire.
type Certificate struct {
	ID             string            `json:"id"`
	Serial         string            `json:"serial"`
	AccountID      string            `json:"account_id"`
	OrderID        string            `json:"order_id"`
	Provisioner    string            `json:"provisioner"`
	DER            []byte            `json:"der"`
	ChainPEM       []byte            `json:"chain_pem"`
	NotBefore      time.Time         `json:"not_before"`
	NotAfter       time.Time         `json:"not_after"`
	Names          []core.Identifier `json:"names"`
	PolicyRevision string            `json:"policy_revision"`
	DecisionID     string            `json:"decision_id"`
	CreatedAt      time.Time         `json:"created_at"`
}

// FromCore converts a certificate record for the wire.
func FromCore(c *core.Certificate) Certificate {
	return Certificate{ID: c.ID, Serial: c.Serial, AccountID: c.AccountID, OrderID: c.OrderID, Provisioner: c.Provisioner,
		DER: c.DER, ChainPEM: c.ChainPEM, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Names: c.Names,
		PolicyRevision: c.PolicyRevision, DecisionID: c.DecisionID, CreatedAt: c.CreatedAt}
}

// Core converts a wire certificate back.
func (c Certificate) Core() *core.Certificate {
	return &core.Certificate{ID: c.ID, Serial: c.Serial, AccountID: c.AccountID, OrderID: c.OrderID, Provisioner: c.Provisioner,
		DER: c.DER, ChainPEM: c.ChainPEM, NotBefore: c.NotBefore, NotAfter: c.NotAfter, Names: c.Names,
		PolicyRevision: c.PolicyRevision, DecisionID: c.DecisionID, CreatedAt: c.CreatedAt}
}

// RevokeRequest revokes by serial (lower-case hex).
type RevokeRequest struct {
	Serial string `json:"serial"`
	Reason int    `json:"reason"`
}

// BindRequest forwards a newAccount's external account binding.
type BindRequest struct {
	Account     BindAccount     `json:"account"`
	Binding     json.RawMessage `json:"binding"`
	OuterKeyJWK json.RawMessage `json:"outer_key_jwk"`
	// URL is the newAccount URL the client signed (the RA's).
	URL string `json:"url"`
}

// BindAccount is the account the RA is creating.
type BindAccount struct {
	ID            string    `json:"id"`
	Provisioner   string    `json:"provisioner"`
	KeyThumbprint string    `json:"key_thumbprint"`
	KeyJWK        []byte    `json:"key_jwk"`
	Contact       []string  `json:"contact"`
	TermsAgreed   bool      `json:"terms_agreed"`
	CreatedAt     time.Time `json:"created_at"`
}

// BindResponse names the account the CA created (or had created for the
// same key and binding before) and the key it is bound to.
type BindResponse struct {
	AccountID string `json:"account_id"`
	EABKeyID  string `json:"eab_kid"`
}

// AccountInfo is the CA's record of an account's EAB key and policy, for
// the RA's order-time policy. EAB is null for accounts the CA does not
// know (accounts created on an RA without EAB).
type AccountInfo struct {
	EAB    *EABInfo        `json:"eab"`
	Policy json.RawMessage `json:"policy,omitempty"`
}

// EABInfo names an EAB key.
type EABInfo struct {
	KeyID     string `json:"kid"`
	Reference string `json:"reference"`
}

// ErrorBody carries a refusal: a core.Error, whose kind the RA maps to the
// ACME problem its client sees.
type ErrorBody struct {
	Error *core.Error `json:"error"`
}
