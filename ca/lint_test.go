package ca

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
)

func TestLintSet(t *testing.T) {
	names, err := LintNames()
	if err != nil {
		t.Fatal(err)
	}
	// Every exclusion must name a real lint: a renamed lint would
	// otherwise silently come back into the set, or a typo hide one.
	for _, n := range append(slices.Clone(lintExclusions), ed25519Exclusions...) {
		if lint.GlobalRegistry().CertificateLints().ByName(n) == nil {
			t.Errorf("excluded lint %q does not exist in zlint", n)
		}
	}
	for _, n := range lintExclusions {
		if slices.Contains(names, n) {
			t.Errorf("excluded lint %q is in the set", n)
		}
	}
	for _, n := range []string{
		"e_dnsname_label_too_long",
		"e_rsa_mod_less_than_2048_bits",
		"e_sub_cert_key_usage_cert_sign_bit_set",
		"e_ext_authority_key_identifier_no_key_identifier",
		"e_ext_san_missing",
		"e_algorithm_identifier_improper_encoding",
	} {
		if !slices.Contains(names, n) {
			t.Errorf("lint %q should be in the set", n)
		}
	}
	for _, n := range names {
		src := lint.GlobalRegistry().CertificateLints().ByName(n).Source
		if !slices.Contains(lintSources, src) {
			t.Errorf("lint %q from source %s should not be in the set", n, src)
		}
	}
	ed, err := registryFor(mustEd25519Pub(t))
	if err != nil {
		t.Fatal(err)
	}
	edNames := ed.CertificateLints().Names()
	for _, n := range ed25519Exclusions {
		if slices.Contains(edNames, n) {
			t.Errorf("lint %q is in the Ed25519 set", n)
		}
	}
	if len(edNames) != len(names)-len(ed25519Exclusions) {
		t.Errorf("Ed25519 set has %d lints, want %d", len(edNames), len(names)-len(ed25519Exclusions))
	}
}

// TestLintMatchesZlint checks that lintCertificate fails exactly the lints
// zlint.LintCertificateEx reports as error or fatal, on certificates that
// pass and on certificates that break several lints.
func TestLintMatchesZlint(t *testing.T) {
	h := testHierarchy(t)
	c, _ := newTestCA(t, nil)
	pub := mustKey(t).Public()
	now := time.Now()
	cases := map[string][]core.Identifier{
		"clean":            dnsIDs("app.internal", "www.app.internal"),
		"long label":       dnsIDs(strings.Repeat("x", 64) + ".internal"),
		"bad characters":   dnsIDs("under_score.internal", "a..b.internal"),
		"ip and wildcards": {{Type: core.IP, Value: "10.0.0.1"}, {Type: core.DNS, Value: "*.*.internal"}},
	}
	for name, ids := range cases {
		t.Run(name, func(t *testing.T) {
			tmpl, err := c.template(pub, ids, now, now.Add(24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			serial, err := pki.RandomSerial()
			if err != nil {
				t.Fatal(err)
			}
			tmpl.SerialNumber = serial
			var got []string
			if _, err := lintCertificate(tmpl, h.inter, pub, c.lintKey); err != nil {
				var le *LintError
				if !errors.As(err, &le) {
					t.Fatalf("lintCertificate: %v", err)
				}
				for _, f := range le.Failed {
					got = append(got, strings.SplitN(f, " ", 2)[0])
				}
			}

			// The same certificate through zlint's own entry point.
			parent := *h.inter
			parent.PublicKey = c.lintKey.Public()
			der, err := x509.CreateCertificate(rand.Reader, tmpl, &parent, pub, c.lintKey)
			if err != nil {
				t.Fatal(err)
			}
			zc, err := zx509.ParseCertificate(der)
			if err != nil {
				t.Fatal(err)
			}
			reg, err := registryFor(pub)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for n, r := range zlint.LintCertificateEx(zc, reg).Results {
				if r.Status == lint.Error || r.Status == lint.Fatal {
					want = append(want, n)
				}
			}
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Fatalf("failed lints %q, zlint reports %q", got, want)
			}
			if name != "clean" && len(want) == 0 {
				t.Fatal("test case breaks no lint")
			}
		})
	}
}
