package storetest

import (
	"testing"
	"time"

	"github.com/policyca/policyca/store"
)

var timeTests = []subtest{
	{"RoundTrip", testTimeRoundTrip},
}

// testTimeRoundTrip checks the documented time contract (UTC, truncated to
// TimePrecision, zero stays zero) on an optional order field, the one most
// likely to hit edge cases, and on a certificate's validity bounds.
func testTimeRoundTrip(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	acct := mustAccount(t, s)
	tests := []struct {
		name string
		in   time.Time
	}{
		{"zero", time.Time{}},
		{"utc whole seconds", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
		{"nanoseconds", time.Date(2030, 1, 1, 0, 0, 0, 999_999_999, time.UTC)},
		{"milliseconds", time.Date(2030, 6, 1, 12, 0, 0, 123_000_000, time.UTC)},
		{"microseconds in a zone", baseTime},
		{"negative offset", time.Date(2029, 12, 31, 23, 59, 59, 1_500, time.FixedZone("UTC-8", -8*3600))},
		{"before 1970", time.Date(1969, 7, 20, 20, 17, 40, 42_000, time.UTC)},
		{"far future", time.Date(9999, 12, 31, 23, 59, 59, 999_999_000, time.UTC)},
		{"unix epoch", time.Unix(0, 0)},
		{"with monotonic reading", time.Now()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, authzs := newOrder(t, acct)
			o.NotBefore = tc.in
			authzs[0].Expires = tc.in
			noErr(t, "CreateOrder", s.CreateOrder(ctx, o, authzs))
			got, err := s.GetOrder(ctx, o.ID)
			noErr(t, "GetOrder", err)
			want := normTime(tc.in)
			if !got.NotBefore.Equal(want) || got.NotBefore.IsZero() != tc.in.IsZero() {
				t.Fatalf("NotBefore: stored %v, read %v, want %v", tc.in, got.NotBefore, want)
			}
			checkUTC(t, "NotBefore", got.NotBefore)
			ga, err := s.GetAuthorization(ctx, authzs[0].ID)
			noErr(t, "GetAuthorization", err)
			if !ga.Expires.Equal(want) {
				t.Fatalf("authorization Expires: stored %v, read %v, want %v", tc.in, ga.Expires, want)
			}
			if tc.in.IsZero() {
				return
			}
			c := newCertificate(t, o)
			c.NotAfter = tc.in
			noErr(t, "PutCertificate", s.PutCertificate(ctx, c))
			gc, err := s.GetCertificate(ctx, c.ID)
			noErr(t, "GetCertificate", err)
			if !gc.NotAfter.Equal(want) {
				t.Fatalf("certificate NotAfter: stored %v, read %v, want %v", tc.in, gc.NotAfter, want)
			}
			checkUTC(t, "certificate NotAfter", gc.NotAfter)
		})
	}
}
