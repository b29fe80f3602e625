package ra

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/policyca/policyca/core"
)

// maxCNAMEHops bounds CNAME chains; real chains are short and a loop must
// not keep a validation busy.
const maxCNAMEHops = 8

// validateDNS01 checks RFC 8555 §8.4: a TXT record at
// _acme-challenge.<name> holding base64url(SHA-256(key authorization)).
// A wildcard identifier is validated at its base name. No TXT record at all
// is a dns error (the operator's DNS is not there yet); TXT records without
// the expected value are incorrectResponse, the RFC 8555 problem type for
// "the response did not match".
func (v *Validator) validateDNS01(ctx context.Context, in core.ChallengeInput) error {
	if in.Identifier.Type != core.DNS {
		return core.Errorf(core.KindMalformed, "dns-01 cannot validate an identifier of type %q", in.Identifier.Type)
	}
	name := "_acme-challenge." + strings.TrimSuffix(strings.TrimPrefix(in.Identifier.Value, "*."), ".")
	sum := sha256.Sum256([]byte(in.KeyAuthorization))
	want := base64.RawURLEncoding.EncodeToString(sum[:])

	txts, err := v.resolver.LookupTXT(ctx, name)
	if err != nil {
		var e *core.Error
		if errors.As(err, &e) {
			return e
		}
		return core.Wrap(core.KindDNS, err, "looking up TXT %s: %s", name, describeNetErr(err))
	}
	if len(txts) == 0 {
		return core.Errorf(core.KindDNS, "no TXT record found at %s", name)
	}
	for _, t := range txts {
		if subtle.ConstantTimeCompare([]byte(t), []byte(want)) == 1 {
			return nil
		}
	}
	shown := make([]string, 0, min(len(txts), 5))
	for _, t := range txts[:min(len(txts), 5)] {
		shown = append(shown, quoteTruncated(t, 100))
	}
	more := ""
	if len(txts) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(txts)-len(shown))
	}
	return core.Errorf(core.KindIncorrectResponse, "expected TXT value %q at %s, found %s%s",
		want, name, strings.Join(shown, ", "), more)
}

// DNSResolver queries the given DNS servers directly with
// github.com/miekg/dns, so that validation uses the DNS view of the network
// the RA sits in rather than the host's resolver configuration. Servers are
// tried in order; the next one is asked when one fails to answer or answers
// SERVFAIL/REFUSED.
type DNSResolver struct {
	servers []string
}

// NewDNSResolver checks that every server is "host:port".
func NewDNSResolver(servers []string) (*DNSResolver, error) {
	if len(servers) == 0 {
		return nil, errors.New("no DNS servers")
	}
	for i, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("[%d] %q is not host:port", i, s)
		}
	}
	return &DNSResolver{servers: slices.Clone(servers)}, nil
}

// LookupIP returns the AAAA then A records of host, following CNAMEs. One
// family failing is tolerated when the other answers.
func (r *DNSResolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	var ips []netip.Addr
	var errs []error
	for _, qtype := range []uint16{dns.TypeAAAA, dns.TypeA} {
		rrs, err := r.lookup(ctx, host, qtype)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(rr.AAAA); ok {
					ips = append(ips, ip.Unmap())
				}
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(rr.A); ok {
					ips = append(ips, ip.Unmap())
				}
			}
		}
	}
	if len(ips) > 0 {
		return ips, nil
	}
	if len(errs) > 0 {
		// With both failing, the A error is reported (IPv4 is what most
		// internal networks run); with one failing and the other empty,
		// the failure says more than "no records".
		return nil, errs[len(errs)-1]
	}
	return nil, core.Errorf(core.KindDNS, "no A or AAAA records found for %s", host)
}

// LookupTXT returns the TXT records at name, following CNAMEs (RFC 8555
// §8.4 relies on this to let a name delegate its challenge to another
// zone).
func (r *DNSResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// lookup returns the records of type qtype at name, after following CNAMEs
// both inside one answer and, when a server answers only with a CNAME, by
// asking again for the target. An empty result is not an error (NODATA).
func (r *DNSResolver) lookup(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	qname := dns.CanonicalName(name)
	seen := map[string]bool{}
	for range maxCNAMEHops {
		if seen[qname] {
			return nil, core.Errorf(core.KindDNS, "CNAME loop at %s looking up %s %s", displayName(qname), dns.TypeToString[qtype], name)
		}
		seen[qname] = true
		msg, err := r.exchange(ctx, qname, qtype)
		if err != nil {
			return nil, err
		}
		if msg.Rcode == dns.RcodeNameError {
			return nil, core.Errorf(core.KindDNS, "NXDOMAIN looking up %s %s", dns.TypeToString[qtype], displayName(qname))
		}
		cur := qname
		var out []dns.RR
		// Walk the chain within this answer; answers are not required to
		// list the CNAMEs in order.
		for range maxCNAMEHops {
			next := ""
			for _, rr := range msg.Answer {
				h := rr.Header()
				if !strings.EqualFold(h.Name, cur) {
					continue
				}
				switch {
				case h.Rrtype == qtype:
					out = append(out, rr)
				case h.Rrtype == dns.TypeCNAME && qtype != dns.TypeCNAME:
					next = dns.CanonicalName(rr.(*dns.CNAME).Target)
				}
			}
			if len(out) > 0 || next == "" {
				break
			}
			if seen[next] {
				return nil, core.Errorf(core.KindDNS, "CNAME loop at %s looking up %s %s", displayName(next), dns.TypeToString[qtype], name)
			}
			seen[next] = true
			cur = next
		}
		if len(out) > 0 || cur == qname {
			return out, nil
		}
		// The answer ended in a CNAME whose target it did not resolve.
		delete(seen, cur)
		qname = cur
	}
	return nil, core.Errorf(core.KindDNS, "too many CNAMEs looking up %s %s", dns.TypeToString[qtype], name)
}

// exchange asks each server in turn, over UDP and then TCP when the answer
// is truncated.
func (r *DNSResolver) exchange(ctx context.Context, qname string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.RecursionDesired = true
	m.SetEdns0(4096, false)
	var firstErr error
	for _, server := range r.servers {
		if ctx.Err() != nil {
			break
		}
		resp, err := exchangeOne(ctx, m, server)
		if err == nil {
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return resp, nil
			}
			err = core.Errorf(core.KindDNS, "%s: %s looking up %s %s", server,
				dns.RcodeToString[resp.Rcode], dns.TypeToString[qtype], displayName(qname))
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr == nil {
		firstErr = core.Wrap(core.KindDNS, ctx.Err(), "timeout looking up %s %s", dns.TypeToString[qtype], displayName(qname))
	}
	return nil, firstErr
}

func exchangeOne(ctx context.Context, m *dns.Msg, server string) (*dns.Msg, error) {
	var resp *dns.Msg
	var err error
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network}
		resp, _, err = c.ExchangeContext(ctx, m, server)
		if err != nil || !resp.Truncated {
			break
		}
	}
	if err != nil {
		q := m.Question[0]
		return nil, core.Wrap(core.KindDNS, err, "%s: %s looking up %s %s", server, describeNetErr(err),
			dns.TypeToString[q.Qtype], displayName(q.Name))
	}
	return resp, nil
}

func displayName(fqdn string) string {
	if fqdn == "." {
		return fqdn
	}
	return strings.TrimSuffix(fqdn, ".")
}

// systemResolver uses the host's resolver (/etc/resolv.conf), for a CA
// that sees the clients through the ordinary DNS.
type systemResolver struct {
	r *net.Resolver
}

func (s systemResolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	ips, err := s.r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, mapNetDNSError(err, "A/AAAA", host)
	}
	for i := range ips {
		ips[i] = ips[i].Unmap()
	}
	// IPv6 first, as DNSResolver does; the order inside a family is kept.
	slices.SortStableFunc(ips, func(a, b netip.Addr) int {
		return cmp.Compare(boolInt(a.Is4()), boolInt(b.Is4()))
	})
	return ips, nil
}

func (s systemResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txts, err := s.r.LookupTXT(ctx, name)
	if err != nil {
		return nil, mapNetDNSError(err, "TXT", name)
	}
	return txts, nil
}

func mapNetDNSError(err error, qtype, name string) error {
	var de *net.DNSError
	if errors.As(err, &de) {
		switch {
		case de.IsNotFound:
			// The system resolver does not tell NXDOMAIN from NODATA.
			return core.Wrap(core.KindDNS, err, "no %s record found for %s (no such host)", qtype, name)
		case de.IsTimeout:
			return core.Wrap(core.KindDNS, err, "timeout looking up %s %s", qtype, name)
		}
		return core.Wrap(core.KindDNS, err, "looking up %s %s: %s", qtype, name, de.Err)
	}
	return core.Wrap(core.KindDNS, err, "looking up %s %s: %s", qtype, name, describeNetErr(err))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
