// Command raclient is the ACME client and the DNS server of the network
// namespace end-to-end test of the RA (e2e/ra_netns_test.go). It runs inside
// a namespace (ip netns exec), serves DNS on -bind:53 (every A query answers
// -a, TXT answers come from its own dns-01 solver), answers http-01 on
// -bind:-http-port, and obtains a certificate for -name from -dir with lego.
// The PEM chain goes to -out; a failure is printed and exits 1.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/go-acme/lego/v4/challenge/dns01"
	"github.com/go-acme/lego/v4/challenge/http01"
	"github.com/go-acme/lego/v4/lego"
	"github.com/go-acme/lego/v4/registration"
	"github.com/miekg/dns"
)

type user struct {
	key crypto.PrivateKey
	reg *registration.Resource
}

func (u *user) GetEmail() string                        { return "" }
func (u *user) GetRegistration() *registration.Resource { return u.reg }
func (u *user) GetPrivateKey() crypto.PrivateKey        { return u.key }

// zone answers A queries with one address and TXT queries from txt.
type zone struct {
	a   net.IP
	mu  sync.Mutex
	txt map[string][]string
}

func (z *zone) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	for _, q := range r.Question {
		hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Ttl: 0}
		switch q.Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: z.a})
		case dns.TypeTXT:
			hdr.Rrtype = dns.TypeTXT
			z.mu.Lock()
			for _, v := range z.txt[dns.CanonicalName(q.Name)] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: hdr, Txt: []string{v}})
			}
			z.mu.Unlock()
		}
	}
	w.WriteMsg(m)
}

func (z *zone) Present(domain, _, keyAuth string) error {
	info := dns01.GetChallengeInfo(domain, keyAuth)
	z.mu.Lock()
	defer z.mu.Unlock()
	n := dns.CanonicalName(info.EffectiveFQDN)
	z.txt[n] = append(z.txt[n], info.Value)
	return nil
}

func (z *zone) CleanUp(domain, _, keyAuth string) error { return nil }

func (z *zone) Timeout() (time.Duration, time.Duration) {
	return 20 * time.Second, 50 * time.Millisecond
}

func main() {
	dir := flag.String("dir", "", "ACME directory URL")
	rootPath := flag.String("root", "", "PEM root the directory's TLS certificate chains to")
	name := flag.String("name", "", "DNS name to obtain")
	chall := flag.String("challenge", "http-01", "http-01 or dns-01")
	bind := flag.String("bind", "", "address for the DNS server (port 53) and the http-01 responder")
	httpPort := flag.Int("http-port", 5002, "http-01 port")
	a := flag.String("a", "", "address every A query answers")
	out := flag.String("out", "", "file for the PEM chain")
	flag.Parse()
	if err := run(*dir, *rootPath, *name, *chall, *bind, *httpPort, *a, *out); err != nil {
		fmt.Fprintln(os.Stderr, "raclient:", err)
		os.Exit(1)
	}
}

func run(dir, rootPath, name, chall, bind string, httpPort int, a, out string) error {
	z := &zone{a: net.ParseIP(a), txt: map[string][]string{}}
	dnsAddr := net.JoinHostPort(bind, "53")
	for _, netw := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: dnsAddr, Net: netw, Handler: z}
		started := make(chan error, 1)
		srv.NotifyStartedFunc = func() { started <- nil }
		go func() { started <- srv.ListenAndServe() }()
		if err := <-started; err != nil {
			return fmt.Errorf("dns %s: %w", netw, err)
		}
	}
	rootPEM, err := os.ReadFile(rootPath)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(rootPEM)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u := &user{key: key}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = dir
	cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, err := lego.NewClient(cfg)
	if err != nil {
		return err
	}
	if u.reg, err = c.Registration.Register(registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		return err
	}
	switch chall {
	case "http-01":
		err = c.Challenge.SetHTTP01Provider(http01.NewProviderServer(bind, strconv.Itoa(httpPort)))
	case "dns-01":
		err = c.Challenge.SetDNS01Provider(z, dns01.AddRecursiveNameservers([]string{dnsAddr}),
			dns01.DisableAuthoritativeNssPropagationRequirement())
	default:
		err = fmt.Errorf("unknown challenge %q", chall)
	}
	if err != nil {
		return err
	}
	res, err := c.Certificate.Obtain(certificate.ObtainRequest{Domains: []string{name}, Bundle: true})
	if err != nil {
		return err
	}
	return os.WriteFile(out, res.Certificate, 0o600)
}
