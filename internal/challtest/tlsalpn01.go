package challtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/policyca/policyca/core"
)

// ACMETLS1Protocol is the ALPN protocol of RFC 8737 §6.2.
const ACMETLS1Protocol = "acme-tls/1"

// OIDACMEIdentifier is the id-pe-acmeIdentifier extension (RFC 8737 §6.1).
var OIDACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// TLSALPNResponder answers tls-alpn-01 challenges (RFC 8737): it picks the
// certificate by SNI and negotiates acme-tls/1. For an IP identifier the
// SNI is its reverse-DNS name (RFC 8738 §6).
type TLSALPNResponder struct {
	addr string
	ln   net.Listener
	wg   sync.WaitGroup

	mu          sync.Mutex
	certs       map[string]*tls.Certificate
	nextProtos  []string
	serverNames []string
	conns       map[net.Conn]struct{}
	closed      bool
}

// NewTLSALPN01Responder serves on addr (e.g. "127.0.0.1:0"), stopped by
// t.Cleanup.
func NewTLSALPN01Responder(t testing.TB, addr string) *TLSALPNResponder {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("challtest: tls-alpn-01 listen %s: %v", addr, err)
	}
	r := &TLSALPNResponder{
		addr:       ln.Addr().String(),
		ln:         ln,
		certs:      map[string]*tls.Certificate{},
		nextProtos: []string{ACMETLS1Protocol},
		conns:      map[net.Conn]struct{}{},
	}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.close)
	return r
}

// Addr returns the listening "host:port".
func (r *TLSALPNResponder) Addr() string { return r.addr }

// Port returns the listening port.
func (r *TLSALPNResponder) Port() int { return port(r.addr) }

// Set serves the RFC 8737 certificate for identifier and keyAuth. It
// panics only if the standard library cannot make a key or certificate.
func (r *TLSALPNResponder) Set(identifier core.Identifier, keyAuth string) {
	cert, err := NewTLSALPN01Certificate(identifier, keyAuth)
	if err != nil {
		panic(fmt.Sprintf("challtest: %v", err))
	}
	r.SetCertificate(SNIFor(identifier), cert)
}

// Delete stops serving a certificate for identifier.
func (r *TLSALPNResponder) Delete(identifier core.Identifier) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.certs, strings.ToLower(SNIFor(identifier)))
}

// SetCertificate serves cert to clients sending serverName as SNI, so that
// tests can serve deliberately wrong certificates.
func (r *TLSALPNResponder) SetCertificate(serverName string, cert tls.Certificate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.certs[strings.ToLower(serverName)] = &cert
}

// SetNextProtos replaces the ALPN protocols the responder accepts (by
// default acme-tls/1 only); none means the server ignores ALPN.
func (r *TLSALPNResponder) SetNextProtos(protos ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextProtos = append([]string(nil), protos...)
}

// ServerNames returns the SNI values seen so far.
func (r *TLSALPNResponder) ServerNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.serverNames...)
}

// SNIFor returns the SNI a validator sends for identifier: the name, or
// for an IP the in-addr.arpa / ip6.arpa name without the trailing dot.
func SNIFor(identifier core.Identifier) string {
	if identifier.Type == core.IP {
		if ip, err := netip.ParseAddr(identifier.Value); err == nil {
			rev, _ := dns.ReverseAddr(ip.Unmap().String())
			return strings.TrimSuffix(rev, ".")
		}
	}
	return identifier.Value
}

func (r *TLSALPNResponder) getConfig(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.serverNames = append(r.serverNames, hello.ServerName)
	cert, ok := r.certs[strings.ToLower(hello.ServerName)]
	if !ok {
		return nil, fmt.Errorf("challtest: no certificate for SNI %q", hello.ServerName)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		NextProtos:   append([]string(nil), r.nextProtos...),
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func (r *TLSALPNResponder) serve() {
	defer r.wg.Done()
	cfg := &tls.Config{GetConfigForClient: r.getConfig, MinVersion: tls.VersionTLS12}
	for {
		conn, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			_ = conn.Close()
			return
		}
		r.conns[conn] = struct{}{}
		r.wg.Add(1)
		r.mu.Unlock()
		go r.handle(tls.Server(conn, cfg), conn)
	}
}

// handle completes the handshake, then waits for the client to hang up:
// a validator reads the certificate and closes; nothing else is spoken.
func (r *TLSALPNResponder) handle(tc *tls.Conn, raw net.Conn) {
	defer r.wg.Done()
	defer func() {
		_ = raw.Close()
		r.mu.Lock()
		delete(r.conns, raw)
		r.mu.Unlock()
	}()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tc.HandshakeContext(context.Background()); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, tc)
}

func (r *TLSALPNResponder) close() {
	r.mu.Lock()
	r.closed = true
	_ = r.ln.Close()
	for c := range r.conns {
		_ = c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// TLSALPN01Template returns the RFC 8737 §3 certificate template for
// identifier and keyAuth: one SAN, the identifier, and the critical
// acmeIdentifier extension holding SHA-256(keyAuth). Tests change it to
// make wrong certificates, then call SelfSigned.
func TLSALPN01Template(identifier core.Identifier, keyAuth string) (*x509.Certificate, error) {
	sum := sha256.Sum256([]byte(keyAuth))
	val, err := asn1.Marshal(sum[:])
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "ACME challenge"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		ExtraExtensions: []pkix.Extension{
			{Id: OIDACMEIdentifier, Critical: true, Value: val},
		},
	}
	switch identifier.Type {
	case core.DNS:
		tmpl.DNSNames = []string{identifier.Value}
	case core.IP:
		ip, err := netip.ParseAddr(identifier.Value)
		if err != nil {
			return nil, fmt.Errorf("IP identifier %q: %w", identifier.Value, err)
		}
		tmpl.IPAddresses = []net.IP{ip.AsSlice()}
	default:
		return nil, errors.New("unsupported identifier type " + string(identifier.Type))
	}
	return tmpl, nil
}

// SelfSigned signs tmpl with a fresh P-256 key.
func SelfSigned(tmpl *x509.Certificate) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// NewTLSALPN01Certificate is the RFC 8737 certificate for identifier and
// keyAuth.
func NewTLSALPN01Certificate(identifier core.Identifier, keyAuth string) (tls.Certificate, error) {
	tmpl, err := TLSALPN01Template(identifier, keyAuth)
	if err != nil {
		return tls.Certificate{}, err
	}
	return SelfSigned(tmpl)
}
