package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/eab"
	"github.com/policyca/policyca/internal/atomicfile"
	"github.com/policyca/policyca/policy"
	"github.com/policyca/policyca/store"
)

// API is what an operator can do, locally or through the admin API.
type API interface {
	AddEAB(ctx context.Context, req AddEABRequest) (*NewEABKey, error)
	ListEAB(ctx context.Context, provisioner string) ([]EABKeyView, error)
	RevokeEAB(ctx context.Context, kid string, deactivateAccount bool) (*EABKeyView, error)
	SetEABPolicy(ctx context.Context, kid string, policy json.RawMessage) (*EABKeyView, error)
	ListDecisions(ctx context.Context, f core.DecisionFilter) ([]DecisionView, error)
	ListProvisioners(ctx context.Context) ([]ProvisionerView, error)
	AddProvisioner(ctx context.Context, p config.Provisioner) (*ProvisionerView, error)
}

// Store is what the service needs from persistence.
type Store interface {
	CreateEABKey(ctx context.Context, k *core.EABKey) error
	GetEABKey(ctx context.Context, id string) (*core.EABKey, error)
	ListEABKeys(ctx context.Context, provisioner string) ([]*core.EABKey, error)
	UpdateEABKey(ctx context.Context, k *core.EABKey) error
	GetAccount(ctx context.Context, id string) (*core.Account, error)
	UpdateAccount(ctx context.Context, a *core.Account) error
	ListDecisions(ctx context.Context, f core.DecisionFilter) ([]*core.DecisionRecord, error)
}

// AddEABRequest asks for a new EAB key.
type AddEABRequest struct {
	Provisioner string `json:"provisioner"`
	Reference   string `json:"reference"`
	// Policy is the account layer's name rules (core.NameRules as JSON).
	Policy json.RawMessage `json:"policy,omitempty"`
	// Expires is how long the key can bind an account ("" = no expiry).
	Expires string `json:"expires,omitempty"`
}

// NewEABKey is the only place the HMAC secret is ever shown.
type NewEABKey struct {
	KID         string `json:"kid"`
	HMAC        string `json:"hmac"`
	Provisioner string `json:"provisioner"`
	Reference   string `json:"reference"`
	// DirectoryURL is the provisioner's ACME directory, for ready commands.
	DirectoryURL string `json:"directory_url,omitempty"`
}

// EABKeyView is a key as listed: never the secret.
type EABKeyView struct {
	KID           string          `json:"kid"`
	Provisioner   string          `json:"provisioner"`
	Reference     string          `json:"reference"`
	Created       time.Time       `json:"created"`
	Expires       *time.Time      `json:"expires,omitempty"`
	Revoked       *time.Time      `json:"revoked,omitempty"`
	BoundAccount  string          `json:"bound_account,omitempty"`
	BoundAt       *time.Time      `json:"bound_at,omitempty"`
	PolicySummary string          `json:"policy_summary"`
	Policy        json.RawMessage `json:"policy,omitempty"`
}

// DecisionView is a decision log entry as listed.
type DecisionView struct {
	ID          string            `json:"id"`
	Time        time.Time         `json:"time"`
	Stage       string            `json:"stage"`
	Provisioner string            `json:"provisioner"`
	Account     string            `json:"account,omitempty"`
	EABKeyID    string            `json:"eab_kid,omitempty"`
	Identifiers []core.Identifier `json:"identifiers"`
	Allow       bool              `json:"allow"`
	Violations  []core.Violation  `json:"violations,omitempty"`
	Lifetime    string            `json:"lifetime,omitempty"`
	Revision    string            `json:"revision"`
	EvalTime    string            `json:"eval_time"`
	Error       string            `json:"error,omitempty"`
	RA          string            `json:"ra,omitempty"`
	Node        string            `json:"node,omitempty"`
}

// ProvisionerView is a provisioner as listed.
type ProvisionerView struct {
	Name            string `json:"name"`
	Type            string `json:"type"`
	RequireEAB      bool   `json:"require_eab"`
	DefaultLifetime string `json:"default_lifetime"`
	MaxLifetime     string `json:"max_lifetime"`
	DirectoryURL    string `json:"directory_url"`
	// Served says whether the running CA serves it (a provisioner added
	// to the configuration is served once the CA restarts); absent when
	// the list is read from the configuration file alone.
	Served *bool `json:"served,omitempty"`
}

// ErrNotFound and ErrInvalid classify failures for the HTTP layer.
var (
	ErrNotFound = errors.New("not found")
	ErrInvalid  = errors.New("invalid request")
	ErrConflict = errors.New("conflict")
)

// Service runs the operations against a state directory's store and
// configuration file.
type Service struct {
	Store Store
	// ConfigPath is the configuration file provisioners are added to.
	ConfigPath string
	Now        func() time.Time
	// Served names the provisioners the running CA serves (nil when the
	// service runs outside the CA, on the configuration file alone).
	Served map[string]bool
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Service) config() (*config.Config, error) {
	c, err := config.Load(s.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration: %w", err)
	}
	return c, nil
}

// AddEAB creates a key for a provisioner that exists in the configuration.
func (s *Service) AddEAB(ctx context.Context, req AddEABRequest) (*NewEABKey, error) {
	c, err := s.config()
	if err != nil {
		return nil, err
	}
	if _, ok := c.Provisioner(req.Provisioner); !ok {
		return nil, fmt.Errorf("%w: no provisioner %q", ErrInvalid, req.Provisioner)
	}
	if req.Reference == "" {
		return nil, fmt.Errorf("%w: a key needs a reference (the operator's name for the machine or team)", ErrInvalid)
	}
	var expires time.Time
	if req.Expires != "" {
		d, err := config.ParseDuration(req.Expires)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: expires: %q is not a positive duration", ErrInvalid, req.Expires)
		}
		expires = s.now().Add(d).UTC()
	}
	policy, err := NormalizePolicy(req.Policy)
	if err != nil {
		return nil, err
	}
	k, err := eab.NewKey(req.Provisioner, req.Reference, expires, policy)
	if err != nil {
		return nil, err
	}
	if err := s.Store.CreateEABKey(ctx, k); err != nil {
		return nil, fmt.Errorf("storing the key: %w", err)
	}
	return &NewEABKey{
		KID: k.ID, HMAC: eab.EncodeHMAC(k.HMACKey), Provisioner: k.Provisioner, Reference: k.Reference,
		DirectoryURL: c.BaseURL() + "/acme/" + k.Provisioner + "/directory",
	}, nil
}

// ListEAB lists keys, never their secrets.
func (s *Service) ListEAB(ctx context.Context, provisioner string) ([]EABKeyView, error) {
	keys, err := s.Store.ListEABKeys(ctx, provisioner)
	if err != nil {
		return nil, err
	}
	out := make([]EABKeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, view(k))
	}
	return out, nil
}

// RevokeEAB revokes a key so that it can never bind; with deactivateAccount
// the account it bound is deactivated too.
func (s *Service) RevokeEAB(ctx context.Context, kid string, deactivateAccount bool) (*EABKeyView, error) {
	k, err := s.update(ctx, kid, func(k *core.EABKey) error {
		if k.RevokedAt.IsZero() {
			k.RevokedAt = s.now().UTC()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if deactivateAccount && k.BoundAccount != "" {
		if err := s.deactivate(ctx, k.BoundAccount); err != nil {
			return nil, fmt.Errorf("key revoked, but deactivating account %s: %w", k.BoundAccount, err)
		}
	}
	v := view(k)
	return &v, nil
}

// SetEABPolicy replaces the account policy of a key (and so of the account
// it bound), effective for the next order. A null/empty policy removes it.
func (s *Service) SetEABPolicy(ctx context.Context, kid string, policy json.RawMessage) (*EABKeyView, error) {
	p, err := NormalizePolicy(policy)
	if err != nil {
		return nil, err
	}
	k, err := s.update(ctx, kid, func(k *core.EABKey) error {
		k.Policy = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	v := view(k)
	return &v, nil
}

// update applies fn to the key with the store's version check, retrying
// if another operator changed it meanwhile.
func (s *Service) update(ctx context.Context, kid string, fn func(*core.EABKey) error) (*core.EABKey, error) {
	for range 5 {
		k, err := s.Store.GetEABKey(ctx, kid)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: no EAB key %q", ErrNotFound, kid)
		}
		if err != nil {
			return nil, err
		}
		if err := fn(k); err != nil {
			return nil, err
		}
		err = s.Store.UpdateEABKey(ctx, k)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: EAB key %q keeps changing, try again", ErrConflict, kid)
}

func (s *Service) deactivate(ctx context.Context, id string) error {
	for range 5 {
		a, err := s.Store.GetAccount(ctx, id)
		if err != nil {
			return err
		}
		if a.Status == core.StatusDeactivated {
			return nil
		}
		a.Status = core.StatusDeactivated
		err = s.Store.UpdateAccount(ctx, a)
		if !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("%w: account %s keeps changing", ErrConflict, id)
}

// ListDecisions lists the decision log.
func (s *Service) ListDecisions(ctx context.Context, f core.DecisionFilter) ([]DecisionView, error) {
	recs, err := s.Store.ListDecisions(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]DecisionView, 0, len(recs))
	for _, r := range recs {
		v := DecisionView{
			ID: r.ID, Time: r.Time, Stage: r.Stage, Provisioner: r.Provisioner, Account: r.AccountID, EABKeyID: r.EABKeyID,
			Identifiers: r.Identifiers, Allow: r.Allow, Violations: r.Violations, Revision: r.Revision,
			EvalTime: r.EvalTime.String(), Error: r.Error, RA: r.RA, Node: r.Node,
		}
		if r.Lifetime > 0 {
			v.Lifetime = r.Lifetime.String()
		}
		out = append(out, v)
	}
	return out, nil
}

// ListProvisioners lists the configured provisioners.
func (s *Service) ListProvisioners(context.Context) ([]ProvisionerView, error) {
	c, err := s.config()
	if err != nil {
		return nil, err
	}
	out := make([]ProvisionerView, 0, len(c.Provisioners))
	for _, p := range c.Provisioners {
		v := provView(c, p)
		if s.Served != nil {
			served := s.Served[p.Name]
			v.Served = &served
		}
		out = append(out, v)
	}
	return out, nil
}

// AddProvisioner appends a provisioner to the configuration file. It takes
// effect when the CA restarts (the listener, validators and policy inputs
// are built at start).
func (s *Service) AddProvisioner(_ context.Context, p config.Provisioner) (*ProvisionerView, error) {
	c, err := s.config()
	if err != nil {
		return nil, err
	}
	if _, ok := c.Provisioner(p.Name); ok {
		return nil, fmt.Errorf("%w: provisioner %q exists", ErrConflict, p.Name)
	}
	c.Provisioners = append(c.Provisioners, p)
	// Round-trip through the strict parser so that defaults and checks are
	// exactly what `policyca ca` will apply.
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	nc, err := config.Parse(b, "")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	c.Provisioners[len(c.Provisioners)-1] = nc.Provisioners[len(nc.Provisioners)-1]
	if c.Policy.Bundle != "" {
		if err := AddProvisionerToBundle(c.Path(c.Policy.Bundle), p.Name); err != nil {
			return nil, err
		}
	}
	if err := c.Write(s.ConfigPath); err != nil {
		return nil, err
	}
	v := provView(c, c.Provisioners[len(c.Provisioners)-1])
	return &v, nil
}

// AddProvisionerToBundle gives a new provisioner an empty rule layer in a
// local bundle directory's data.json, so that the policy knows it (the
// default policy refuses provisioners it does not know, so that adding one
// to the configuration alone can never widen what is signed). An empty
// layer adds no rules of its own: the authority layer still applies.
// Bundles that are not a local directory with a data.json (a .tar.gz, a
// URL, data elsewhere), and signed directories (editing data.json would
// break the signature, and the CA would refuse the bundle), are left
// alone: their owner adds the entry (and signs).
func AddProvisionerToBundle(dir, name string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, ".signatures.json")); err == nil {
		return nil
	}
	path := filepath.Join(dir, "data.json")
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	root, ok := doc["policyca"].(map[string]any)
	if !ok {
		return nil
	}
	provs, ok := root["provisioners"].(map[string]any)
	if !ok {
		provs = map[string]any{}
		root["provisioners"] = provs
	}
	if _, exists := provs[name]; exists {
		return nil
	}
	provs[name] = map[string]any{}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(out, '\n'), st.Mode().Perm())
}

func provView(c *config.Config, p config.Provisioner) ProvisionerView {
	return ProvisionerView{
		Name: p.Name, Type: p.Type, RequireEAB: p.RequireEAB,
		DefaultLifetime: p.DefaultLifetime.D().String(), MaxLifetime: p.MaxLifetime.D().String(),
		DirectoryURL: c.BaseURL() + "/acme/" + p.Name + "/directory",
	}
}

func view(k *core.EABKey) EABKeyView {
	v := EABKeyView{
		KID: k.ID, Provisioner: k.Provisioner, Reference: k.Reference, Created: k.CreatedAt,
		BoundAccount: k.BoundAccount, PolicySummary: PolicySummary(k.Policy),
	}
	if len(k.Policy) > 0 {
		v.Policy = json.RawMessage(k.Policy)
	}
	tp := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	v.Expires, v.Revoked, v.BoundAt = tp(k.ExpiresAt), tp(k.RevokedAt), tp(k.BoundAt)
	return v
}

// NormalizePolicy checks an account policy strictly (unknown fields are
// errors naming the field) and returns its canonical JSON; empty or null
// means no account policy.
func NormalizePolicy(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var r core.NameRules
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: account policy: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: account policy: trailing data", ErrInvalid)
	}
	if r.MaxLifetime != "" {
		d, err := config.ParseDuration(r.MaxLifetime)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%w: account policy: max_lifetime %q is not a positive duration", ErrInvalid, r.MaxLifetime)
		}
		if _, err := time.ParseDuration(r.MaxLifetime); err != nil {
			// Days ("7d"), as the configuration writes them: stored as
			// hours, in the form every reader takes (the engine and OPA read
			// days too, and policies stored as "7d" before this still work).
			r.MaxLifetime = d.String()
		}
	}
	for _, set := range []*core.RuleSet{&r.Allow, &r.Deny} {
		for _, l := range []*[]string{&set.DNS, &set.IP, &set.Email, &set.URI, &set.CN} {
			if slices.Contains(*l, "") {
				return nil, fmt.Errorf("%w: account policy: empty pattern", ErrInvalid)
			}
			if len(*l) == 0 {
				// An empty list and no list mean the same; one form only,
				// so that the stored policy is canonical.
				*l = nil
			}
		}
	}
	out, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	// The checks decisions make (patterns in the form names are matched
	// in, CIDRs without host bits…): a policy they would refuse must not
	// be stored, or every order of its accounts would fail.
	if err := policy.ValidateAccountPolicy(out); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return out, nil
}

// PolicySummary is a one-line description of an account policy.
func PolicySummary(p []byte) string {
	if len(p) == 0 {
		return "none"
	}
	var r core.NameRules
	if err := json.Unmarshal(p, &r); err != nil {
		return "unreadable"
	}
	s := fmt.Sprintf("%d allow, %d deny", r.Allow.Count(), r.Deny.Count())
	if r.AllowWildcardNames {
		s += ", wildcards"
	}
	if r.MaxLifetime != "" {
		s += ", max " + r.MaxLifetime
	}
	return s
}
