package challtest

import (
	"time"

	"github.com/go-acme/lego/v4/challenge"
	"github.com/go-acme/lego/v4/challenge/dns01"
)

var _ challenge.ProviderTimeout = (*LegoDNSProvider)(nil)

// LegoDNSProvider is a lego dns-01 challenge.Provider that publishes the
// TXT records in S, so that integration tests can run lego's dns-01 against
// the CA with S as the validator's resolver.
//
// lego resolves the record name (following CNAMEs) and checks propagation
// through a package-global list of nameservers that defaults to
// /etc/resolv.conf. Tests must stay on loopback, so register the provider
// with its Options:
//
//	client.Challenge.SetDNS01Provider(p, p.Options()...)
//
// Present also points that list at S before it resolves anything, so a test
// that forgets still never queries the host's DNS servers.
type LegoDNSProvider struct {
	S *DNSServer
}

// Options are the lego dns-01 options for this provider: S as the only
// recursive nameserver, and no propagation check against the zone's
// authoritative servers (lego would look them up through NS records and
// contact them on port 53).
func (p *LegoDNSProvider) Options() []dns01.ChallengeOption {
	return []dns01.ChallengeOption{
		dns01.AddRecursiveNameservers([]string{p.S.Addr()}),
		dns01.DisableAuthoritativeNssPropagationRequirement(),
	}
}

// Present publishes the TXT record for domain.
func (p *LegoDNSProvider) Present(domain, _, keyAuth string) error {
	if err := dns01.AddRecursiveNameservers([]string{p.S.Addr()})(nil); err != nil {
		return err
	}
	info := dns01.GetChallengeInfo(domain, keyAuth)
	p.S.AddTXT(info.EffectiveFQDN, info.Value)
	return nil
}

// CleanUp removes the TXT record Present published.
func (p *LegoDNSProvider) CleanUp(domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(domain, keyAuth)
	p.S.RemoveTXT(info.EffectiveFQDN, info.Value)
	return nil
}

// Timeout keeps lego's propagation polling short: records in S are visible
// at once.
func (p *LegoDNSProvider) Timeout() (timeout, interval time.Duration) {
	return 30 * time.Second, 50 * time.Millisecond
}
