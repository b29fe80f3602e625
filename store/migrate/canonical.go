package migrate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/policyca/policyca/core"
)

// canonical serializes a row so that equal contents give equal bytes
// whichever backend read them: times in UTC at the stores' microsecond
// precision, empty and nil lists alike, JSON documents stored as text
// (an EAB key's policy) re-encoded with sorted keys and no spacing, as
// PostgreSQL's jsonb would otherwise reorder them. Everything else is the
// row's JSON encoding, which covers every exported field of the core types.
func canonical(row any) ([]byte, error) {
	var v any
	switch r := row.(type) {
	case *core.Account:
		c := *r
		c.CreatedAt = ct(c.CreatedAt)
		c.Contact = nilIfEmpty(c.Contact)
		c.KeyJWK = nilIfEmpty(c.KeyJWK)
		v = c
	case *core.Order:
		c := *r
		c.Expires, c.NotBefore, c.NotAfter = ct(c.Expires), ct(c.NotBefore), ct(c.NotAfter)
		c.ProcessingSince, c.CreatedAt = ct(c.ProcessingSince), ct(c.CreatedAt)
		c.Identifiers = nilIfEmpty(c.Identifiers)
		c.AuthzIDs = nilIfEmpty(c.AuthzIDs)
		v = c
	case *core.Authorization:
		c := *r
		c.Expires = ct(c.Expires)
		c.Challenges = nil
		for _, ch := range r.Challenges {
			ch.Validated = ct(ch.Validated)
			c.Challenges = append(c.Challenges, ch)
		}
		v = c
	case *core.Certificate:
		c := *r
		c.NotBefore, c.NotAfter, c.RevokedAt, c.CreatedAt = ct(c.NotBefore), ct(c.NotAfter), ct(c.RevokedAt), ct(c.CreatedAt)
		c.Names = nilIfEmpty(c.Names)
		c.DER, c.ChainPEM = nilIfEmpty(c.DER), nilIfEmpty(c.ChainPEM)
		v = c
	case *core.EABKey:
		c := *r
		c.CreatedAt, c.ExpiresAt, c.RevokedAt, c.BoundAt = ct(c.CreatedAt), ct(c.ExpiresAt), ct(c.RevokedAt), ct(c.BoundAt)
		c.HMACKey = nilIfEmpty(c.HMACKey)
		if c.Policy != nil {
			p, err := canonicalJSON(c.Policy)
			if err != nil {
				return nil, fmt.Errorf("migrate: EAB key %s: policy: %w", c.ID, err)
			}
			c.Policy = p
		}
		v = c
	case *core.DecisionRecord:
		c := *r
		c.Time = ct(c.Time)
		c.Identifiers = nilIfEmpty(c.Identifiers)
		c.Violations = nilIfEmpty(c.Violations)
		v = c
	case *core.RA:
		c := *r
		c.DisabledAt, c.EnrolledAt, c.CertNotAfter, c.CreatedAt = ct(c.DisabledAt), ct(c.EnrolledAt), ct(c.CertNotAfter), ct(c.CreatedAt)
		c.Provisioners = nilIfEmpty(c.Provisioners)
		v = c
	case *core.RAToken:
		c := *r
		c.CreatedAt, c.ExpiresAt, c.UsedAt = ct(c.CreatedAt), ct(c.ExpiresAt), ct(c.UsedAt)
		c.Provisioners = nilIfEmpty(c.Provisioners)
		c.SecretHash = nilIfEmpty(c.SecretHash)
		v = c
	default:
		return nil, fmt.Errorf("migrate: unknown row type %T", row)
	}
	return json.Marshal(v)
}

// ct is a time as the stores keep it.
func ct(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

func nilIfEmpty[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

// canonicalJSON re-encodes a JSON document: objects with sorted keys, no
// insignificant space, numbers as written.
func canonicalJSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
