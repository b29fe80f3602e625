package capolicy

import (
	"context"
	"crypto/x509"

	"github.com/policyca/policyca/ca"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/policy"
)

// Checker implements ca.SignPolicy with a policy engine.
type Checker struct{ s *policy.SignChecker }

var _ ca.SignPolicy = (*Checker)(nil)

// New returns the sign-time policy of e.
func New(e *policy.Engine) *Checker { return &Checker{s: e.SignPolicy()} }

// CheckSign evaluates the policy with stage "sign". A denial is a
// ca.Decision with Allow false and the violations' reasons; an evaluation
// failure is a serverInternal error, which the CA treats as a denial.
func (c *Checker) CheckSign(ctx context.Context, req core.SignRequest, csr *x509.CertificateRequest) (ca.Decision, error) {
	v, err := c.s.Check(ctx, req, csr)
	d := ca.Decision{Allow: v.Allow && err == nil, Lifetime: v.Lifetime, Revision: v.Revision, DecisionID: v.DecisionID, Reason: v.Reason}
	return d, err
}
