package core

import "time"

// EABKey is an External Account Binding key (RFC 8555 §7.3.4): a
// client-specific HMAC secret that lets exactly one ACME account register on
// a provisioner, optionally carrying that account's own name rules.
type EABKey struct {
	// ID is the key identifier the client sends as the EAB JWS "kid".
	ID          string
	Provisioner string
	// Reference is the operator's name for the machine or team.
	Reference string
	// HMACKey is the secret. It never appears in logs, errors or listings.
	HMACKey   []byte
	CreatedAt time.Time
	// ExpiresAt is zero when the key never expires (for binding).
	ExpiresAt time.Time
	RevokedAt time.Time
	// BoundAccount/BoundAt are set once, in the transaction that creates
	// the account.
	BoundAccount string
	BoundAt      time.Time
	// Policy is the account layer's name rules as JSON (DESIGN.md), or nil.
	Policy  []byte
	Version int64
}

// Violation is one reason a policy decision refused a name or a request.
type Violation struct {
	Type   string `json:"type"`
	Value  string `json:"value"`
	Layer  string `json:"layer"`
	Reason string `json:"reason"`
}

// Decision stages.
const (
	StageOrder = "order"
	StageSign  = "sign"
)

// DecisionRecord is one entry of the decision log.
type DecisionRecord struct {
	ID          string
	Time        time.Time
	Stage       string
	Provisioner string
	AccountID   string
	EABKeyID    string
	Identifiers []Identifier
	Allow       bool
	Violations  []Violation
	// Lifetime is the decision's lifetime cap (0 = none).
	Lifetime time.Duration
	Revision string
	EvalTime time.Duration
	// Error is set when evaluation failed (the decision then denies).
	Error string
	// RA names the relaying registration authority, Node the CA node.
	RA   string
	Node string
}

// DecisionFilter selects decision log entries, newest first.
type DecisionFilter struct {
	DeniedOnly bool
	Since      time.Time
	AccountID  string
	Limit      int // default 100
}

// NameRules is one layer's name rules (DESIGN.md, "Name rules"): the
// authority and provisioner layers live in the policy bundle's data; the
// account layer is stored with the account's EAB key.
type NameRules struct {
	Allow              RuleSet `json:"allow,omitzero"`
	Deny               RuleSet `json:"deny,omitzero"`
	AllowWildcardNames bool    `json:"allow_wildcard_names,omitempty"`
	// MaxLifetime is a duration string ("72h", "7d"), "" for no cap.
	MaxLifetime string `json:"max_lifetime,omitempty"`
}

// RuleSet lists patterns by name type.
type RuleSet struct {
	DNS   []string `json:"dns,omitempty"`
	IP    []string `json:"ip,omitempty"`
	Email []string `json:"email,omitempty"`
	URI   []string `json:"uri,omitempty"`
	CN    []string `json:"cn,omitempty"`
}

// Count is the number of patterns in the set.
func (r RuleSet) Count() int { return len(r.DNS) + len(r.IP) + len(r.Email) + len(r.URI) + len(r.CN) }
