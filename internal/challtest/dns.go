package challtest

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// DNSServer is an authoritative-and-recursive-looking DNS server for tests,
// answering over UDP and TCP on the same loopback port from records set by
// the test. A name with no records is NXDOMAIN; a name with records but
// none of the asked type is an empty NOERROR (NODATA). CNAMEs are followed
// inside the server, as a recursive resolver would, and the chain is
// returned in the answer. Large UDP answers are truncated so that clients
// retry over TCP.
type DNSServer struct {
	addr string

	mu        sync.RWMutex
	addrs     map[string][]netip.Addr
	txt       map[string][]string
	cname     map[string]string
	servfail  map[string]bool
	defaultIP []netip.Addr
}

// ttl is short: tests change records between validations.
const ttl = 1

// NewDNSServer starts a server on 127.0.0.1 (a random port, UDP and TCP),
// stopped by t.Cleanup.
func NewDNSServer(t testing.TB) *DNSServer {
	t.Helper()
	s := &DNSServer{
		addrs:    map[string][]netip.Addr{},
		txt:      map[string][]string{},
		cname:    map[string]string{},
		servfail: map[string]bool{},
	}
	pc, ln := listenUDPAndTCP(t)
	s.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{
		{PacketConn: pc, Handler: s},
		{Listener: ln, Handler: s},
	} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() {
			defer close(done)
			// The error after Shutdown is expected and carries nothing.
			_ = srv.ActivateAndServe()
		}()
		<-started
		t.Cleanup(func() {
			_ = srv.Shutdown()
			<-done
		})
	}
	return s
}

// listenUDPAndTCP binds UDP on a random loopback port and TCP on the same
// port, retrying when another process holds that TCP port.
func listenUDPAndTCP(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("challtest: listen udp: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		lastErr = err
		_ = pc.Close()
	}
	t.Fatalf("challtest: no port free for both udp and tcp: %v", lastErr)
	return nil, nil
}

// Addr returns the server's "127.0.0.1:port", for a resolver list.
func (s *DNSServer) Addr() string { return s.addr }

func key(name string) string { return dns.CanonicalName(name) }

// SetA sets the addresses of name: IPv4 ones are served as A records,
// IPv6 ones as AAAA. No addresses removes them.
func (s *DNSServer) SetA(name string, ips ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ips) == 0 {
		delete(s.addrs, key(name))
		return
	}
	s.addrs[key(name)] = slices.Clone(ips)
}

// SetDefaultA sets the addresses served for A/AAAA queries on any name that
// has none of its own (every name → 127.0.0.1 is handy). With a default
// set, every name exists: a TXT query on an unknown name is NODATA, not
// NXDOMAIN.
func (s *DNSServer) SetDefaultA(ips ...netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.defaultIP = slices.Clone(ips)
}

// SetTXT replaces the TXT records of name, one record per value.
func (s *DNSServer) SetTXT(name string, values ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(values) == 0 {
		delete(s.txt, key(name))
		return
	}
	s.txt[key(name)] = slices.Clone(values)
}

// AddTXT adds one TXT record to name, keeping the others: a wildcard and
// its base name publish two values at the same _acme-challenge name.
func (s *DNSServer) AddTXT(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.txt[key(name)] = append(s.txt[key(name)], value)
}

// RemoveTXT removes one TXT record with that value from name.
func (s *DNSServer) RemoveTXT(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key(name)
	if i := slices.Index(s.txt[k], value); i >= 0 {
		s.txt[k] = slices.Delete(s.txt[k], i, i+1)
	}
	if len(s.txt[k]) == 0 {
		delete(s.txt, k)
	}
}

// ClearTXT removes all TXT records of name.
func (s *DNSServer) ClearTXT(name string) {
	s.SetTXT(name)
}

// SetCNAME makes name an alias of target; an empty target removes it.
func (s *DNSServer) SetCNAME(name, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if target == "" {
		delete(s.cname, key(name))
		return
	}
	s.cname[key(name)] = key(target)
}

// SetServFail makes every query for name answer SERVFAIL (or stop doing
// so), to test how clients report a broken zone.
func (s *DNSServer) SetServFail(name string, fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if fail {
		s.servfail[key(name)] = true
	} else {
		delete(s.servfail, key(name))
	}
}

// ServeDNS implements dns.Handler.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	s.answer(m, key(q.Name), q.Qtype)
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	// A write error means the client went away; nothing to do about it.
	_ = w.WriteMsg(m)
}

func (s *DNSServer) answer(m *dns.Msg, name string, qtype uint16) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cur := name
	seen := map[string]bool{}
	for qtype != dns.TypeCNAME {
		if s.servfail[cur] {
			m.Rcode = dns.RcodeServerFailure
			m.Answer = nil
			return
		}
		target, ok := s.cname[cur]
		if !ok || seen[cur] {
			break
		}
		seen[cur] = true
		m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(cur, dns.TypeCNAME), Target: target})
		cur = target
	}
	if s.servfail[cur] {
		m.Rcode = dns.RcodeServerFailure
		m.Answer = nil
		return
	}
	switch qtype {
	case dns.TypeA, dns.TypeAAAA:
		ips, ok := s.addrs[cur]
		if !ok {
			ips = s.defaultIP
		}
		for _, ip := range ips {
			switch {
			case ip.Is4() || ip.Is4In6():
				if qtype == dns.TypeA {
					m.Answer = append(m.Answer, &dns.A{Hdr: hdr(cur, qtype), A: net.IP(ip.Unmap().AsSlice())})
				}
			case qtype == dns.TypeAAAA:
				m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(cur, qtype), AAAA: net.IP(ip.AsSlice())})
			}
		}
	case dns.TypeTXT:
		for _, v := range s.txt[cur] {
			m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr(cur, qtype), Txt: splitTXT(v)})
		}
	case dns.TypeCNAME:
		if target, ok := s.cname[cur]; ok {
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(cur, qtype), Target: target})
		}
	}
	if !s.exists(cur) {
		m.Rcode = dns.RcodeNameError
	}
}

// exists reports whether name has any record; callers hold s.mu.
func (s *DNSServer) exists(name string) bool {
	if len(s.defaultIP) > 0 {
		return true
	}
	_, a := s.addrs[name]
	_, t := s.txt[name]
	_, c := s.cname[name]
	return a || t || c
}

func hdr(name string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: name, Rrtype: rrtype, Class: dns.ClassINET, Ttl: ttl}
}

// splitTXT cuts a value into the 255-byte strings a TXT record is made of;
// clients join them back.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// String names the server in test logs.
func (s *DNSServer) String() string {
	return "challtest DNS " + s.addr
}
