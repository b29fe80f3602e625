package acme

import (
	"slices"
	"time"

	"github.com/policyca/policyca/core"
)

// Wire types: the JSON of RFC 8555 §7.1. Domain objects are converted at
// the edge and never serialised directly, so a storage field can never leak
// into a response by accident.

type directoryJSON struct {
	NewNonce   string         `json:"newNonce"`
	NewAccount string         `json:"newAccount"`
	NewOrder   string         `json:"newOrder"`
	RevokeCert string         `json:"revokeCert"`
	KeyChange  string         `json:"keyChange"`
	Meta       *directoryMeta `json:"meta,omitempty"`
}

type directoryMeta struct {
	TermsOfService          string   `json:"termsOfService,omitempty"`
	Website                 string   `json:"website,omitempty"`
	CAAIdentities           []string `json:"caaIdentities,omitempty"`
	ExternalAccountRequired bool     `json:"externalAccountRequired,omitempty"`
}

type accountJSON struct {
	Status               core.Status `json:"status"`
	Contact              []string    `json:"contact,omitempty"`
	TermsOfServiceAgreed bool        `json:"termsOfServiceAgreed,omitempty"`
	Orders               string      `json:"orders"`
}

type orderJSON struct {
	Status         core.Status       `json:"status"`
	Expires        string            `json:"expires,omitempty"`
	Identifiers    []core.Identifier `json:"identifiers"`
	NotBefore      string            `json:"notBefore,omitempty"`
	NotAfter       string            `json:"notAfter,omitempty"`
	Error          *Problem          `json:"error,omitempty"`
	Authorizations []string          `json:"authorizations"`
	Finalize       string            `json:"finalize"`
	Certificate    string            `json:"certificate,omitempty"`
}

type authzJSON struct {
	Identifier core.Identifier `json:"identifier"`
	Status     core.Status     `json:"status"`
	Expires    string          `json:"expires,omitempty"`
	Challenges []challengeJSON `json:"challenges"`
	Wildcard   bool            `json:"wildcard,omitempty"`
}

type challengeJSON struct {
	Type      string      `json:"type"`
	URL       string      `json:"url"`
	Status    core.Status `json:"status"`
	Token     string      `json:"token"`
	Validated string      `json:"validated,omitempty"`
	Error     *Problem    `json:"error,omitempty"`
}

type ordersListJSON struct {
	Orders []string `json:"orders"`
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func problemOrNil(e *core.Error) *Problem {
	if e == nil {
		return nil
	}
	return ProblemFor(e)
}

func (p *provisioner) accountJSON(a *core.Account) accountJSON {
	return accountJSON{
		Status:               a.Status,
		Contact:              a.Contact,
		TermsOfServiceAgreed: a.TermsAgreed,
		Orders:               p.ordersURL(a.ID),
	}
}

func (p *provisioner) orderJSON(o *core.Order) orderJSON {
	j := orderJSON{
		Status:         o.Status,
		Expires:        timeString(o.Expires),
		Identifiers:    o.Identifiers,
		NotBefore:      timeString(o.NotBefore),
		NotAfter:       timeString(o.NotAfter),
		Error:          problemOrNil(o.Error),
		Authorizations: make([]string, 0, len(o.AuthzIDs)),
		Finalize:       p.finalizeURL(o.ID),
	}
	for _, id := range o.AuthzIDs {
		j.Authorizations = append(j.Authorizations, p.authzURL(id))
	}
	if o.Status == core.StatusValid && o.CertificateID != "" {
		j.Certificate = p.certURL(o.CertificateID)
	}
	return j
}

func (p *provisioner) authzJSON(a *core.Authorization) authzJSON {
	j := authzJSON{
		Identifier: a.Identifier,
		Status:     a.Status,
		Expires:    timeString(a.Expires),
		Challenges: make([]challengeJSON, 0, len(a.Challenges)),
		Wildcard:   a.Wildcard,
	}
	// §7.1.4: a valid authorization lists the challenge that was
	// validated, an invalid one the challenge that was attempted and
	// failed. One made invalid without an attempt (expired, deactivated)
	// lists them all.
	var only core.Status // "": all
	if (a.Status == core.StatusValid || a.Status == core.StatusInvalid) &&
		slices.ContainsFunc(a.Challenges, func(c core.Challenge) bool { return c.Status == a.Status }) {
		only = a.Status
	}
	for i := range a.Challenges {
		if c := &a.Challenges[i]; only == "" || c.Status == only {
			j.Challenges = append(j.Challenges, p.challengeJSON(a, c))
		}
	}
	return j
}

func (p *provisioner) challengeJSON(a *core.Authorization, c *core.Challenge) challengeJSON {
	return challengeJSON{
		Type:      c.Type,
		URL:       p.challURL(a.ID, c.ID),
		Status:    c.Status,
		Token:     c.Token,
		Validated: timeString(c.Validated),
		Error:     problemOrNil(c.Error),
	}
}
