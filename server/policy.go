package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/metrics"
	"github.com/policyca/policyca/policy"
	"github.com/policyca/policyca/store"
)

// newPolicyEngine loads the configured bundle. A bundle that does not load
// stops the CA from starting: the error names the file and line.
func newPolicyEngine(cfg *config.Config, st store.Store, node string, log *slog.Logger, m *metrics.Metrics) (*policy.Engine, error) {
	keys := map[string]policy.VerificationKey{}
	for id, k := range cfg.Policy.VerificationKeys {
		pem, err := os.ReadFile(cfg.Path(k.Key))
		if err != nil {
			return nil, fmt.Errorf("policy.verification_keys.%s: %w", id, err)
		}
		keys[id] = policy.VerificationKey{PEM: string(pem), Alg: k.Alg}
	}
	ec := policy.EngineConfig{
		Path:             cfg.Path(cfg.Policy.Bundle),
		URL:              cfg.Policy.URL,
		VerificationKeys: keys,
		PollInterval:     cfg.Policy.PollInterval.D(),
		EvalTimeout:      cfg.Policy.EvalTimeout.D(),
		Sink:             decisionSink{st},
		Accounts:         accountInfo{st},
		Node:             node,
		Logger:           log,
		OnLoad: func(rev string, nameRulesInGo bool, err error) {
			if err != nil {
				m.PolicyLoadFailures.Inc()
				return
			}
			m.SetPolicyRevision(rev, nameRulesInGo)
		},
	}
	if cfg.Policy.URL != "" {
		ec.Path = ""
	}
	e, err := policy.NewEngine(ec)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return e, nil
}

// decisionSink writes every decision to the store's decision log before
// the decision takes effect (the engine denies if this fails).
type decisionSink struct{ st store.Store }

func (d decisionSink) RecordDecision(ctx context.Context, r policy.DecisionRecord) error {
	return d.st.RecordDecisions(ctx, []*core.DecisionRecord{r.Core()})
}

// accountInfo gives the policy the account's EAB key and account policy
// from the CA's own store (never a client's or an RA's word for it).
type accountInfo struct{ st store.Store }

func (a accountInfo) LookupAccount(ctx context.Context, id string) (*policy.EABInfo, json.RawMessage, error) {
	acct, err := a.st.GetAccount(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		// Unknown to this CA: no EAB, no account layer (an RA's accounts
		// are looked up through their EAB key id instead).
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if acct.EABKeyID == "" {
		return nil, nil, nil
	}
	eab, pol, err := a.LookupEABKey(ctx, acct.EABKeyID)
	if err != nil {
		return nil, nil, fmt.Errorf("account %s: %w", id, err)
	}
	return eab, pol, nil
}

// LookupEABKey implements policy.EABKeyInfo.
func (a accountInfo) LookupEABKey(ctx context.Context, keyID string) (*policy.EABInfo, json.RawMessage, error) {
	k, err := a.st.GetEABKey(ctx, keyID)
	if err != nil {
		return nil, nil, fmt.Errorf("EAB key %s: %w", keyID, err)
	}
	var pol json.RawMessage
	if len(k.Policy) > 0 {
		pol = json.RawMessage(k.Policy)
	}
	return &policy.EABInfo{KeyID: k.ID, Reference: k.Reference}, pol, nil
}
