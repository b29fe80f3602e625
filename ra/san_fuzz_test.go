package ra

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/policyca/policyca/core"
)

// FuzzParseGeneralNames feeds arbitrary bytes to the subjectAltName
// parser of tls-alpn-01 (the extension comes from the certificate a
// remote server presents). It must not panic; what it accepts must be
// exactly one DER SEQUENCE of its entries; and at most one entry, a
// dNSName or iPAddress, may ever match an identifier.
func FuzzParseGeneralNames(f *testing.F) {
	seq := func(entries ...[]byte) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, e := range entries {
				b.AddBytes(e)
			}
		})
		return b.BytesOrPanic()
	}
	f.Add(seq([]byte{0x82, 0x0b, 'a', '.', 'i', 'n', 't', 'e', 'r', 'n', 'a', 'l'}))
	f.Add(seq([]byte{0x87, 0x04, 127, 0, 0, 1}))
	f.Add(seq([]byte{0x87, 0x04, 127, 0, 0, 1}, []byte{0x88, 0x03, 0x2a, 0x03, 0x04}))
	f.Add(seq())
	f.Add([]byte{0x30, 0x81, 0x00})
	ids := []core.Identifier{{Type: core.DNS, Value: "a.internal"}, {Type: core.IP, Value: "127.0.0.1"}, {Type: core.IP, Value: "::1"}}
	f.Fuzz(func(t *testing.T, der []byte) {
		names, err := parseGeneralNames(der)
		_ = describeGeneralNames(names)
		if err != nil {
			return
		}
		var entries [][]byte
		for _, n := range names {
			var b cryptobyte.Builder
			b.AddASN1(n.tag, func(b *cryptobyte.Builder) { b.AddBytes(n.value) })
			e, err := b.Bytes()
			if err != nil {
				t.Fatalf("entry %v does not re-encode: %v", n, err)
			}
			entries = append(entries, e)
		}
		if again := seq(entries...); !bytes.Equal(again, der) {
			t.Fatalf("accepted %x, which is not the DER of its %d entries (%x)", der, len(names), again)
		}
		for _, id := range ids {
			for _, n := range names {
				if sanMatches(n, id) && n.tag != tagDNSName && n.tag != tagIPAddress {
					t.Fatalf("%v matched %v with tag %v", n, id, n.tag)
				}
			}
		}
	})
}
