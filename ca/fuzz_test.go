package ca

import (
	"net"
	"strings"
	"testing"

	"github.com/policyca/policyca/core"
)

// FuzzCheckCSR feeds arbitrary bytes to the CSR checks, which face the
// network: they must never panic, and anything they accept must really
// name the identifiers.
func FuzzCheckCSR(f *testing.F) {
	k := mustKey(f)
	f.Add(makeCSR(f, k, "", []string{"a.internal"}, nil))
	f.Add(makeCSR(f, k, "a.internal", []string{"a.internal"}, nil))
	f.Add(makeCSR(f, k, "", nil, []net.IP{net.ParseIP("10.0.0.1")}))
	f.Add(makeCSR(f, k, "", []string{"b.internal"}, nil))
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x80})
	ids := []core.Identifier{{Type: core.DNS, Value: "a.internal"}}
	acct := mustJWK(f, mustKey(f).Public())
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := CheckCSR(der, ids, acct)
		if err != nil {
			if core.AsError(err).Kind == core.KindServerInternal {
				t.Fatalf("CSR input produced an internal error: %v", err)
			}
			return
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted CSR with bad signature: %v", err)
		}
		for _, d := range csr.DNSNames {
			if !strings.EqualFold(d, "a.internal") {
				t.Fatalf("accepted CSR naming %q", d)
			}
		}
		if len(csr.IPAddresses) != 0 || len(csr.EmailAddresses) != 0 || len(csr.URIs) != 0 {
			t.Fatal("accepted CSR with extra SANs")
		}
	})
}
