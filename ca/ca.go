package ca

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/store"
)

// Store is the persistence the CA needs. Backends return the sentinel
// errors of package store.
type Store interface {
	PutCertificate(ctx context.Context, c *core.Certificate) error
	GetCertificateBySerial(ctx context.Context, serial string) (*core.Certificate, error)
	RevokeCertificate(ctx context.Context, serial string, reason int, at time.Time) error
	ListRevoked(ctx context.Context, notExpiredAt time.Time) ([]*core.Certificate, error)
}

// Profile is the certificate profile of one provisioner.
type Profile struct {
	// DefaultLifetime applies when the order asks for no notAfter
	// (0 = DefaultLifetime of the package, 24h).
	DefaultLifetime time.Duration
	// MaxLifetime caps a requested notAfter (0 = DefaultLifetime). A
	// request beyond it is capped, not refused: the client gets a working
	// certificate and can read its real notAfter.
	MaxLifetime time.Duration
}

// DefaultLifetime is the lifetime of certificates when neither the
// provisioner profile nor the request says otherwise.
const DefaultLifetime = 24 * time.Hour

func (p Profile) withDefaults() (Profile, error) {
	if p.DefaultLifetime < 0 || p.MaxLifetime < 0 {
		return p, errors.New("lifetimes must not be negative")
	}
	if p.DefaultLifetime == 0 {
		p.DefaultLifetime = DefaultLifetime
	}
	if p.MaxLifetime == 0 {
		p.MaxLifetime = p.DefaultLifetime
	}
	if p.MaxLifetime < p.DefaultLifetime {
		return p, fmt.Errorf("MaxLifetime %s is shorter than DefaultLifetime %s", p.MaxLifetime, p.DefaultLifetime)
	}
	return p, nil
}

// Decision is the sign-time policy's answer.
type Decision struct {
	Allow bool
	// Lifetime caps the certificate's lifetime (0 = no cap).
	Lifetime time.Duration
	// Revision and DecisionID are recorded with the certificate.
	Revision   string
	DecisionID string
	// Reason explains a denial to the client.
	Reason string
}

// SignPolicy is evaluated after the CSR checks and before signing. An
// error denies (fail closed): a *core.Error of a client-facing kind (e.g.
// rejectedIdentifier with subproblems) is returned as is, anything else
// becomes serverInternal.
type SignPolicy interface {
	CheckSign(ctx context.Context, req core.SignRequest, csr *x509.CertificateRequest) (Decision, error)
}

// Options configures a CA.
type Options struct {
	// Signer holds the key of Issuer.
	Signer crypto.Signer
	// Issuer signs leaf certificates.
	Issuer *x509.Certificate
	// Chain holds the intermediates above Issuer, closest first, without
	// the root; it is appended to every ChainPEM.
	Chain []*x509.Certificate
	Store Store
	// Profiles by provisioner name. When empty, every provisioner gets
	// the default profile; otherwise an unknown provisioner is refused.
	Profiles map[string]Profile
	// Policy is the sign-time policy (nil allows everything).
	Policy SignPolicy
	// Backdate is subtracted from NotBefore for clients with slow clocks
	// (0 = 1 minute; negative is an error).
	Backdate time.Duration
	// Lint runs the lint set on every certificate before it is signed.
	Lint bool
	// Now is the clock (nil = time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// CRLURL, if set, is put in every certificate's CRL distribution point.
	CRLURL string
	// CRLValidity is the time between a CRL's thisUpdate and nextUpdate
	// (0 = 24h).
	CRLValidity time.Duration
}

// CA checks and signs certificate requests, and revokes. It is safe for
// concurrent use; it never speaks ACME.
type CA struct {
	signer      crypto.Signer
	issuer      *x509.Certificate
	chain       []*x509.Certificate
	chainPEM    []byte
	store       Store
	profiles    map[string]Profile
	policy      SignPolicy
	backdate    time.Duration
	lintKey     crypto.Signer
	now         func() time.Time
	log         *slog.Logger
	crlURL      string
	crlValidity time.Duration
	crl         crlCache
}

// New validates o and returns a CA.
func New(o Options) (*CA, error) {
	if o.Signer == nil {
		return nil, errors.New("ca: Options.Signer is required")
	}
	if o.Issuer == nil {
		return nil, errors.New("ca: Options.Issuer is required")
	}
	if o.Store == nil {
		return nil, errors.New("ca: Options.Store is required")
	}
	if !o.Issuer.IsCA || !o.Issuer.BasicConstraintsValid {
		return nil, errors.New("ca: Options.Issuer is not a CA certificate")
	}
	if o.Issuer.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, errors.New("ca: Options.Issuer lacks the keyCertSign key usage")
	}
	if len(o.Issuer.SubjectKeyId) == 0 {
		return nil, errors.New("ca: Options.Issuer has no subject key identifier (leaf certificates need it as their AKI)")
	}
	pub, ok := o.Signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(o.Issuer.PublicKey) {
		return nil, errors.New("ca: Options.Signer's public key does not match Options.Issuer")
	}
	child := o.Issuer
	for i, c := range o.Chain {
		if c == nil {
			return nil, fmt.Errorf("ca: Options.Chain[%d] is nil", i)
		}
		if err := child.CheckSignatureFrom(c); err != nil {
			return nil, fmt.Errorf("ca: Options.Chain[%d] (%s) did not sign %s: %w", i, c.Subject, child.Subject, err)
		}
		child = c
	}
	if o.Backdate < 0 {
		return nil, errors.New("ca: Options.Backdate must not be negative")
	}
	if o.Backdate == 0 {
		o.Backdate = time.Minute
	}
	if o.CRLValidity < 0 {
		return nil, errors.New("ca: Options.CRLValidity must not be negative")
	}
	if o.CRLValidity == 0 {
		o.CRLValidity = 24 * time.Hour
	}
	if o.CRLURL != "" && !strings.HasPrefix(o.CRLURL, "http://") && !strings.HasPrefix(o.CRLURL, "https://") {
		return nil, fmt.Errorf("ca: Options.CRLURL %q is not an http(s) URL", o.CRLURL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	profiles := make(map[string]Profile, len(o.Profiles))
	for name, p := range o.Profiles {
		q, err := p.withDefaults()
		if err != nil {
			return nil, fmt.Errorf("ca: profile %q: %w", name, err)
		}
		profiles[name] = q
	}
	if now := o.Now(); now.After(o.Issuer.NotAfter) {
		return nil, fmt.Errorf("ca: issuer %s expired at %s", o.Issuer.Subject, o.Issuer.NotAfter.UTC().Format(time.RFC3339))
	}
	c := &CA{
		signer:      o.Signer,
		issuer:      o.Issuer,
		chain:       append([]*x509.Certificate(nil), o.Chain...),
		store:       o.Store,
		profiles:    profiles,
		policy:      o.Policy,
		backdate:    o.Backdate,
		now:         o.Now,
		log:         o.Logger,
		crlURL:      o.CRLURL,
		crlValidity: o.CRLValidity,
	}
	c.chainPEM = pki.EncodePEMCerts(append([]*x509.Certificate{o.Issuer}, o.Chain...)...)
	if o.Lint {
		if _, err := lintRegistryEd25519(); err != nil {
			return nil, fmt.Errorf("ca: lint registry: %w", err)
		}
		if _, err := lintRegistry(); err != nil {
			return nil, fmt.Errorf("ca: lint registry: %w", err)
		}
		// Generated here so that the first issuance does not pay for it.
		k, err := lintKeyFor(o.Issuer.PublicKey)
		if err != nil {
			return nil, err
		}
		c.lintKey = k
	}
	return c, nil
}

// Issuer returns the certificate that signs leaf certificates.
func (c *CA) Issuer() *x509.Certificate { return c.issuer }

func (c *CA) profile(name string) (Profile, error) {
	if len(c.profiles) == 0 {
		return Profile{DefaultLifetime: DefaultLifetime, MaxLifetime: DefaultLifetime}, nil
	}
	p, ok := c.profiles[name]
	if !ok {
		return Profile{}, core.Errorf(core.KindUnauthorized, "unknown provisioner %q", name)
	}
	return p, nil
}

// serialAttempts bounds the retries on a serial collision, which with 128
// random bits means a broken random source rather than bad luck.
const serialAttempts = 3

// Sign checks req, asks the policy, lints, signs, stores and returns the
// certificate. Refusals are *core.Error; nothing is signed or stored
// unless every check passed.
func (c *CA) Sign(ctx context.Context, req core.SignRequest) (*core.Certificate, error) {
	if len(req.AccountKeyJWK) == 0 {
		return nil, core.Wrap(core.KindMalformed, errNoAccountKey, "sign request has no account key")
	}
	req.Identifiers = distinct(req.Identifiers)
	csr, err := CheckCSR(req.CSR, req.Identifiers, req.AccountKeyJWK)
	if err != nil {
		return nil, err
	}
	prof, err := c.profile(req.Provisioner)
	if err != nil {
		return nil, err
	}
	now := c.now()
	start, lifetime, err := requestedWindow(now, req, prof)
	if err != nil {
		return nil, err
	}

	var dec Decision
	if c.policy != nil {
		dec, err = c.policy.CheckSign(ctx, req, csr)
		if err != nil {
			// Fail closed: whatever went wrong, nothing is signed.
			c.log.WarnContext(ctx, "sign policy failed", "order", req.OrderID, "account", req.AccountID, "err", err)
			if e := core.AsError(err); e.Kind != core.KindServerInternal {
				return nil, e
			}
			return nil, core.Wrap(core.KindServerInternal, err, "policy evaluation failed")
		}
		if !dec.Allow {
			detail := "policy refused this certificate"
			if dec.Reason != "" {
				detail += ": " + dec.Reason
			}
			c.log.InfoContext(ctx, "sign denied by policy", "order", req.OrderID, "account", req.AccountID,
				"identifiers", req.Identifiers, "revision", dec.Revision, "decision_id", dec.DecisionID, "reason", dec.Reason)
			return nil, core.Errorf(core.KindRejectedIdentifier, "%s", detail)
		}
	}
	notBefore, notAfter, err := c.validity(now, start, lifetime, prof, dec.Lifetime)
	if err != nil {
		return nil, err
	}
	tmpl, err := c.template(csr.PublicKey, req.Identifiers, notBefore, notAfter)
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot build certificate")
	}

	for attempt := 1; ; attempt++ {
		cert, err := c.issue(ctx, tmpl, csr.PublicKey, req, dec, now)
		if err == nil {
			return cert, nil
		}
		if !errors.Is(err, store.ErrDuplicateSerial) {
			return nil, err
		}
		if attempt == serialAttempts {
			return nil, core.Wrap(core.KindServerInternal, err, "cannot store the certificate")
		}
		c.log.WarnContext(ctx, "serial collision, retrying", "attempt", attempt)
	}
}

// distinct returns ids without repeats, in normal form where they have
// one, in their first order. The ACME front end normalises an order's
// identifiers; the RA API's callers pass them one by one or take them from
// a CSR, and a name repeated (or differing only in case or form) would
// otherwise be in the certificate twice. An identifier that does not
// normalise is kept as it is, for the checks that follow to refuse.
func distinct(ids []core.Identifier) []core.Identifier {
	out := make([]core.Identifier, 0, len(ids))
	for _, id := range ids {
		if n, err := core.NormalizeIdentifier(id); err == nil {
			id = n
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// validity is the certificate's validity period: from start, backdated
// (by at most half the limit), for lifetime, with every limit applied to
// the whole period, backdating included (a policy that caps certificates at 1h gets certificates whose
// notAfter − notBefore is at most 1h): the profile's MaxLifetime, the
// policy's cap (0 = none), and the issuer's own notAfter, which a leaf must
// not outlive (a shorter certificate is more useful to the client than a
// refusal). A period that is empty once capped (an order whose notBefore
// comes after the issuer expires) is refused.
func (c *CA) validity(now, start time.Time, lifetime time.Duration, p Profile, policyCap time.Duration) (notBefore, notAfter time.Time, err error) {
	if now.After(c.issuer.NotAfter) {
		return notBefore, notAfter, core.Errorf(core.KindServerInternal, "the issuing certificate has expired")
	}
	limit := p.MaxLifetime
	if policyCap > 0 {
		limit = min(limit, policyCap)
	}
	// Backdating takes at most half of the period, so that a limit no
	// longer than the backdate (a policy cap of a minute) still leaves a
	// period that reaches past start.
	notBefore = start.Add(-min(c.backdate, limit/2))
	notAfter = start.Add(min(lifetime, limit))
	if notAfter.Sub(notBefore) > limit {
		notAfter = notBefore.Add(limit)
	}
	if notAfter.After(c.issuer.NotAfter) {
		// Only this can end the period at or before start.
		notAfter = c.issuer.NotAfter
		if !notAfter.After(start) {
			return notBefore, notAfter, core.Errorf(core.KindMalformed,
				"the requested notBefore (%s) is not before the issuing certificate expires (%s)",
				start.UTC().Format(time.RFC3339), c.issuer.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	return notBefore, notAfter, nil
}

// requestedWindow returns when the certificate's validity starts (before
// backdating) and how long it lasts, from the order's notBefore/notAfter
// and the profile.
func requestedWindow(now time.Time, req core.SignRequest, p Profile) (time.Time, time.Duration, error) {
	start := now
	if !req.NotBefore.IsZero() && req.NotBefore.After(now) {
		if req.NotBefore.Sub(now) > p.MaxLifetime {
			return time.Time{}, 0, core.Errorf(core.KindMalformed, "notBefore is too far in the future")
		}
		start = req.NotBefore
	}
	lifetime := p.DefaultLifetime
	if !req.NotAfter.IsZero() {
		if !req.NotAfter.After(start) {
			return time.Time{}, 0, core.Errorf(core.KindMalformed, "notAfter is not after notBefore")
		}
		lifetime = min(req.NotAfter.Sub(start), p.MaxLifetime)
	}
	return start, lifetime, nil
}

func (c *CA) template(pub crypto.PublicKey, ids []core.Identifier, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	ski, err := pki.SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		NotBefore:             notBefore.UTC().Truncate(time.Second),
		NotAfter:              notAfter.UTC().Truncate(time.Second),
		KeyUsage:              pki.LeafKeyUsage(pub),
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          ski,
	}
	for _, id := range ids {
		switch id.Type {
		case core.DNS:
			name := strings.ToLower(id.Value)
			t.DNSNames = append(t.DNSNames, name)
			// The CN is legacy; RFC 5280 caps it at 64 characters and
			// leaving it empty is fine (the SAN is then critical).
			if t.Subject.CommonName == "" && len(name) <= 64 {
				t.Subject = pkix.Name{CommonName: name}
			}
		case core.IP:
			a, err := netip.ParseAddr(id.Value)
			if err != nil {
				return nil, err
			}
			t.IPAddresses = append(t.IPAddresses, net.IP(a.Unmap().AsSlice()))
		}
	}
	if c.crlURL != "" {
		t.CRLDistributionPoints = []string{c.crlURL}
	}
	return t, nil
}

func (c *CA) issue(ctx context.Context, tmpl *x509.Certificate, pub crypto.PublicKey, req core.SignRequest, dec Decision, now time.Time) (*core.Certificate, error) {
	serial, err := pki.RandomSerial()
	if err != nil {
		return nil, core.Wrap(core.KindServerInternal, err, "cannot make a serial number")
	}
	t := *tmpl
	t.SerialNumber = serial
	der, leaf, err := c.sign(ctx, &t, pub, req)
	if err != nil {
		return nil, err
	}
	id := core.NewID()
	chain := append(pki.EncodePEMCerts(leaf), c.chainPEM...)
	rec := &core.Certificate{
		ID:             id,
		Serial:         SerialString(serial),
		AccountID:      req.AccountID,
		OrderID:        req.OrderID,
		Provisioner:    req.Provisioner,
		DER:            der,
		ChainPEM:       chain,
		NotBefore:      leaf.NotBefore,
		NotAfter:       leaf.NotAfter,
		Names:          append([]core.Identifier(nil), req.Identifiers...),
		PolicyRevision: dec.Revision,
		DecisionID:     dec.DecisionID,
		CreatedAt:      now,
	}
	// Stored before it is returned: a certificate a client holds is one
	// the CA knows about and can revoke.
	if err := c.store.PutCertificate(ctx, rec); err != nil {
		if errors.Is(err, store.ErrDuplicateSerial) {
			return nil, err
		}
		return nil, core.Wrap(core.KindServerInternal, err, "cannot store the certificate")
	}
	c.log.InfoContext(ctx, "certificate issued", "serial", rec.Serial, "id", rec.ID,
		"provisioner", req.Provisioner, "account", req.AccountID, "order", req.OrderID, "ra", req.RA,
		"identifiers", req.Identifiers, "not_after", rec.NotAfter,
		"revision", dec.Revision, "decision_id", dec.DecisionID)
	return rec, nil
}

// sign lints the certificate t describes and signs it: the very bytes
// zlint passed (signLinted), or, with linting off, what
// x509.CreateCertificate makes of t.
func (c *CA) sign(ctx context.Context, t *x509.Certificate, pub crypto.PublicKey, req core.SignRequest) ([]byte, *x509.Certificate, error) {
	if c.lintKey == nil {
		der, err := x509.CreateCertificate(rand.Reader, t, c.issuer, pub, c.signer)
		if err != nil {
			return nil, nil, core.Wrap(core.KindServerInternal, err, "signing failed")
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, core.Wrap(core.KindServerInternal, err, "cannot parse the signed certificate")
		}
		return der, leaf, nil
	}
	lintDER, err := lintCertificate(t, c.issuer, pub, c.lintKey)
	if err != nil {
		c.log.ErrorContext(ctx, "certificate failed lint, not signed", "order", req.OrderID, "err", err)
		return nil, nil, core.Wrap(core.KindServerInternal, err, "the certificate failed the CA's lint checks")
	}
	der, leaf, err := signLinted(lintDER, c.signer, c.issuer)
	if err != nil {
		return nil, nil, core.Wrap(core.KindServerInternal, err, "signing failed")
	}
	return der, leaf, nil
}

// SerialString formats a serial as the store keys it: lower-case hex
// without leading zeros.
func SerialString(n *big.Int) string { return n.Text(16) }
