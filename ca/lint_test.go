package ca

import (
	"slices"
	"testing"

	"github.com/zmap/zlint/v3/lint"
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
