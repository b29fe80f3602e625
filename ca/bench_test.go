package ca

import (
	"context"
	"testing"
)

// BenchmarkSign measures one issuance with an ECDSA P-256 issuer and an
// ECDSA P-256 certificate key, with and without the pre-signing lint, so
// that zlint's cost per issuance is the difference of the two.
func BenchmarkSign(b *testing.B) {
	for _, bc := range []struct {
		name string
		lint bool
	}{{"nolint", false}, {"lint", true}} {
		b.Run(bc.name, func(b *testing.B) {
			c, _ := newTestCA(b, func(o *Options) { o.Lint = bc.lint })
			req := request(b, "app.internal", "www.app.internal")
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Sign(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
