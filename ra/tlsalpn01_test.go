package ra_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/challtest"
	"github.com/policyca/policyca/ra"
)

// alpnCert makes a tls-alpn-01 certificate for id and keyAuth, changed by
// mutate before it is signed.
func alpnCert(t *testing.T, id core.Identifier, keyAuth string, mutate func(*x509.Certificate)) tls.Certificate {
	t.Helper()
	tmpl, err := challtest.TLSALPN01Template(id, keyAuth)
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(tmpl)
	}
	cert, err := challtest.SelfSigned(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func acmeExt(t *testing.T, value []byte, critical bool) pkix.Extension {
	t.Helper()
	der, err := asn1.Marshal(value)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: challtest.OIDACMEIdentifier, Critical: critical, Value: der}
}

// gn is one GeneralName: a context-specific tag (RFC 5280 §4.2.1.6) and
// its contents.
type gn struct {
	tag   cbasn1.Tag
	value []byte
}

func gnDNS(name string) gn { return gn{cbasn1.Tag(2).ContextSpecific(), []byte(name)} }
func gnIP(ip string) gn {
	return gn{cbasn1.Tag(7).ContextSpecific(), netip.MustParseAddr(ip).AsSlice()}
}

// gnRegisteredID is [8] registeredID 1.2.3.4, a kind crypto/x509 drops.
func gnRegisteredID() gn { return gn{cbasn1.Tag(8).ContextSpecific(), []byte{0x2a, 0x03, 0x04}} }

// gnOtherName is [0] otherName {1.2.3.4, [0] UTF8String "x"}, another
// kind crypto/x509 drops.
func gnOtherName() gn {
	return gn{cbasn1.Tag(0).ContextSpecific().Constructed(),
		[]byte{0x06, 0x03, 0x2a, 0x03, 0x04, 0xa0, 0x03, 0x0c, 0x01, 'x'}}
}

// withSANs replaces the certificate's subjectAltName by one holding names,
// encoded as given, so that tests can put in what crypto/x509 cannot.
func withSANs(t *testing.T, names ...gn) func(*x509.Certificate) {
	return func(c *x509.Certificate) {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, n := range names {
				b.AddASN1(n.tag, func(b *cryptobyte.Builder) { b.AddBytes(n.value) })
			}
		})
		der, err := b.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		c.DNSNames, c.IPAddresses = nil, nil
		c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: der})
	}
}

func TestTLSALPN01(t *testing.T) {
	dns := challtest.NewDNSServer(t)
	dns.SetDefaultA(loopback4)
	resp := challtest.NewTLSALPN01Responder(t, "127.0.0.1:0")
	resp6 := challtest.NewTLSALPN01Responder(t, "[::1]:"+strconv.Itoa(resp.Port()))
	v := newValidator(t, ra.ValidatorConfig{TLSALPNPort: resp.Port(), Resolvers: []string{dns.Addr()}})

	tests := []struct {
		name    string
		id      core.Identifier
		setup   func(t *testing.T, id core.Identifier, ka string)
		kind    core.ErrorKind
		details []string
	}{
		{name: "ok", id: dnsID("ok.internal"), setup: func(_ *testing.T, id core.Identifier, ka string) { resp.Set(id, ka) }},
		{name: "ok IPv4 identifier", id: ipID("127.0.0.1"), setup: func(_ *testing.T, id core.Identifier, ka string) { resp.Set(id, ka) }},
		{name: "ok IPv6 identifier", id: ipID("::1"), setup: func(_ *testing.T, id core.Identifier, ka string) { resp6.Set(id, ka) }},
		{name: "ok SAN in another case", id: dnsID("case.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate("case.internal", alpnCert(t, id, ka, func(c *x509.Certificate) { c.DNSNames = []string{"CASE.internal"} }))
		}},
		{name: "no certificate for the SNI", id: dnsID("nocert.internal"), setup: func(*testing.T, core.Identifier, string) {},
			kind: core.KindTLS, details: []string{"handshake", `"nocert.internal"`}},
		{name: "wrong ALPN", id: dnsID("alpn.internal"), setup: func(_ *testing.T, id core.Identifier, ka string) {
			resp.Set(id, ka)
			resp.SetNextProtos("http/1.1")
		}, kind: core.KindTLS, details: []string{"no application protocol"}},
		{name: "no ALPN", id: dnsID("noalpn.internal"), setup: func(_ *testing.T, id core.Identifier, ka string) {
			resp.Set(id, ka)
			resp.SetNextProtos()
		}, kind: core.KindTLS, details: []string{`negotiated ALPN ""`}},
		{name: "missing extension", id: dnsID("noext.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, func(c *x509.Certificate) { c.ExtraExtensions = nil }))
		}, kind: core.KindUnauthorized, details: []string{"no acmeIdentifier extension"}},
		{name: "extension not critical", id: dnsID("noncrit.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			sum := sha256.Sum256([]byte(ka))
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, func(c *x509.Certificate) {
				c.ExtraExtensions = []pkix.Extension{acmeExt(t, sum[:], false)}
			}))
		}, kind: core.KindUnauthorized, details: []string{"not critical"}},
		// crypto/x509 refuses to parse such a certificate, so the
		// handshake itself fails.
		{name: "extension twice", id: dnsID("twice.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			sum := sha256.Sum256([]byte(ka))
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, func(c *x509.Certificate) {
				c.ExtraExtensions = append(c.ExtraExtensions, acmeExt(t, sum[:], true))
			}))
		}, kind: core.KindTLS, details: []string{"duplicate extension"}},
		{name: "extension malformed", id: dnsID("short.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, func(c *x509.Certificate) {
				c.ExtraExtensions = []pkix.Extension{acmeExt(t, []byte("short"), true)}
			}))
		}, kind: core.KindUnauthorized, details: []string{"malformed acmeIdentifier"}},
		{name: "wrong digest", id: dnsID("digest.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, "other."+thumbprint, nil))
		}, kind: core.KindIncorrectResponse, details: []string{"expected SHA-256 of key authorization"}},
		{name: "wrong SAN", id: dnsID("san.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, dnsID("other.internal"), ka, nil))
		}, kind: core.KindUnauthorized, details: []string{`dns "other.internal"`}},
		{name: "extra SAN", id: dnsID("extra.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, func(c *x509.Certificate) {
				c.URIs = []*url.URL{{Scheme: "https", Host: "extra.internal"}}
			}))
		}, kind: core.KindUnauthorized, details: []string{"exactly one SAN"}},
		{name: "IP identifier with a DNS SAN", id: ipID("127.0.0.1"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(challtest.SNIFor(id), alpnCert(t, dnsID("127.0.0.1"), ka, nil))
		}, kind: core.KindUnauthorized, details: []string{`dns "127.0.0.1"`}},
		{name: "IP identifier with another IP", id: ipID("127.0.0.1"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(challtest.SNIFor(id), alpnCert(t, ipID("127.0.0.2"), ka, nil))
		}, kind: core.KindUnauthorized, details: []string{"ip 127.0.0.2"}},
		// SAN entries written by hand, as crypto/x509 would not.
		{name: "ok hand-written SAN", id: ipID("127.0.0.1"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(challtest.SNIFor(id), alpnCert(t, id, ka, withSANs(t, gnIP("127.0.0.1"))))
		}},
		// crypto/x509 drops registeredID, otherName and directoryName
		// entries: counting its fields would see one SAN here.
		{name: "IP identifier and an extra registeredID", id: ipID("127.0.0.1"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(challtest.SNIFor(id), alpnCert(t, id, ka, withSANs(t, gnIP("127.0.0.1"), gnRegisteredID())))
		}, kind: core.KindUnauthorized, details: []string{"exactly one SAN", "ip 127.0.0.1, registeredID"}},
		{name: "DNS identifier and an extra otherName", id: dnsID("other-name.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, withSANs(t, gnOtherName(), gnDNS(id.Value))))
		}, kind: core.KindUnauthorized, details: []string{`otherName, dns "other-name.internal"`}},
		{name: "two dNSNames", id: dnsID("two.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, withSANs(t, gnDNS(id.Value), gnDNS(id.Value))))
		}, kind: core.KindUnauthorized, details: []string{`dns "two.internal", dns "two.internal"`}},
		{name: "IP identifier with its reverse name as dNSName", id: ipID("127.0.0.1"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(challtest.SNIFor(id), alpnCert(t, id, ka, withSANs(t, gnDNS(challtest.SNIFor(id)))))
		}, kind: core.KindUnauthorized, details: []string{`dns "1.0.0.127.in-addr.arpa"`}},
		{name: "DNS identifier with only a registeredID", id: dnsID("regid.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, withSANs(t, gnRegisteredID())))
		}, kind: core.KindUnauthorized, details: []string{"it has registeredID"}},
		{name: "empty SAN", id: dnsID("empty.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, withSANs(t)))
		}, kind: core.KindUnauthorized, details: []string{"empty subjectAltName"}},
		{name: "no SAN extension", id: dnsID("nosan.internal"), setup: func(t *testing.T, id core.Identifier, ka string) {
			resp.SetCertificate(id.Value, alpnCert(t, id, ka, func(c *x509.Certificate) { c.DNSNames = nil }))
		}, kind: core.KindUnauthorized, details: []string{"no subjectAltName extension"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp.SetNextProtos(ra.ACMETLS1Protocol)
			tok := "t" + strconv.Itoa(i)
			ka := keyAuthFor(tok)
			tt.setup(t, tt.id, ka)
			err := v.Validate(context.Background(), core.ChallengeInput{
				Type: core.ChallengeTLSALPN01, Identifier: tt.id, Token: tok, KeyAuthorization: ka,
			})
			wantResult(t, err, tt.kind, tt.details...)
		})
	}
}

func TestTLSALPN01SendsReverseNameForIP(t *testing.T) {
	resp := challtest.NewTLSALPN01Responder(t, "127.0.0.1:0")
	resp6 := challtest.NewTLSALPN01Responder(t, "[::1]:"+strconv.Itoa(resp.Port()))
	v := newValidator(t, ra.ValidatorConfig{TLSALPNPort: resp.Port(), Resolvers: []string{"127.0.0.1:1"}})
	tests := []struct {
		ip   string
		on   *challtest.TLSALPNResponder
		want string
	}{
		{ip: "127.0.0.1", on: resp, want: "1.0.0.127.in-addr.arpa"},
		{ip: "::1", on: resp6, want: "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"},
	}
	for _, tt := range tests {
		t.Run(tt.ip, func(t *testing.T) {
			if got := ra.ReverseName(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("ReverseName(%s) = %s, want %s", tt.ip, got, tt.want)
			}
			tt.on.Set(ipID(tt.ip), keyAuthFor("rev"))
			err := v.Validate(context.Background(), core.ChallengeInput{
				Type: core.ChallengeTLSALPN01, Identifier: ipID(tt.ip), Token: "rev", KeyAuthorization: keyAuthFor("rev"),
			})
			wantResult(t, err, "")
			names := tt.on.ServerNames()
			if len(names) == 0 || names[len(names)-1] != tt.want {
				t.Errorf("SNI %v, want %s", names, tt.want)
			}
		})
	}
}

func TestTLSALPN01ConnectionRefused(t *testing.T) {
	p := closedPort(t)
	v := newValidator(t, ra.ValidatorConfig{TLSALPNPort: p, Resolvers: []string{"127.0.0.1:1"}})
	err := v.Validate(context.Background(), core.ChallengeInput{
		Type: core.ChallengeTLSALPN01, Identifier: ipID("127.0.0.1"), Token: "t", KeyAuthorization: keyAuthFor("t"),
	})
	wantResult(t, err, core.KindConnection, "127.0.0.1:"+strconv.Itoa(p)+": connection refused")
}

func TestTLSALPN01NotTLS(t *testing.T) {
	// A plain TCP server that hangs up at once: the handshake cannot
	// complete, which is a connection failure, not a TLS verdict.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	v := newValidator(t, ra.ValidatorConfig{TLSALPNPort: ln.Addr().(*net.TCPAddr).Port, Resolvers: []string{"127.0.0.1:1"}})
	err = v.Validate(context.Background(), core.ChallengeInput{
		Type: core.ChallengeTLSALPN01, Identifier: ipID("127.0.0.1"), Token: "t", KeyAuthorization: keyAuthFor("t"),
	})
	wantResult(t, err, core.KindConnection, "TLS handshake")
}

func TestParseACMEExtension(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	good, _ := asn1.Marshal(sum[:])
	short, _ := asn1.Marshal(sum[:31])
	utf8, _ := asn1.Marshal(string(sum[:]))
	tests := []struct {
		name string
		der  []byte
		ok   bool
	}{
		{name: "good", der: good, ok: true},
		{name: "empty", der: nil},
		{name: "short digest", der: short},
		{name: "trailing data", der: append(append([]byte(nil), good...), 0)},
		{name: "not an octet string", der: utf8},
		{name: "long-form length", der: append([]byte{0x04, 0x81, 0x20}, sum[:]...)},
		{name: "raw digest", der: sum[:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ra.ParseACMEExtension(tt.der)
			if tt.ok != (err == nil) {
				t.Fatalf("ParseACMEExtension: err %v, want ok=%v", err, tt.ok)
			}
			if tt.ok && !bytes.Equal(got, sum[:]) {
				t.Errorf("digest %x, want %x", got, sum)
			}
		})
	}
}

func FuzzParseACMEExtension(f *testing.F) {
	sum := sha256.Sum256([]byte("seed"))
	good, _ := asn1.Marshal(sum[:])
	f.Add(good)
	f.Add([]byte{})
	f.Add([]byte{0x04, 0x20})
	f.Add(append([]byte{0x04, 0x81, 0x20}, sum[:]...))
	f.Fuzz(func(t *testing.T, der []byte) {
		got, err := ra.ParseACMEExtension(der)
		if err != nil {
			return
		}
		// Whatever is accepted is exactly the DER of a 32-byte digest.
		if len(got) != sha256.Size {
			t.Fatalf("accepted a %d-byte digest", len(got))
		}
		again, err := asn1.Marshal(got)
		if err != nil || !bytes.Equal(again, der) {
			t.Fatalf("accepted non-DER input %x", der)
		}
	})
}
