package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

var decisionTests = []subtest{
	{"RecordList", testDecisionRecordList},
	{"NoTime", testDecisionNoTime},
	{"Empty", testDecisionEmpty},
	{"Filters", testDecisionFilters},
	{"Limit", testDecisionLimit},
}

// newDecision returns a denial with every field set; i spaces the times
// one second apart.
func newDecision(t *testing.T, i int) *core.DecisionRecord {
	t.Helper()
	return &core.DecisionRecord{
		ID:          "dec-" + newID(t),
		Time:        baseTime.Add(time.Duration(i) * time.Second),
		Stage:       core.StageOrder,
		Provisioner: "acme",
		AccountID:   "acct-1",
		EABKeyID:    "kid-1",
		Identifiers: []core.Identifier{
			{Type: core.DNS, Value: fmt.Sprintf("host%d.example.internal", i)},
			{Type: core.IP, Value: "10.0.0.7"},
		},
		Allow: false,
		Violations: []core.Violation{
			{Type: "dns", Value: fmt.Sprintf("host%d.example.internal", i), Layer: "account",
				Reason: `not below ".team.example.internal"`},
			{Type: "ip", Value: "10.0.0.7", Layer: "provisioner", Reason: "denied by 10.0.0.0/24"},
		},
		Lifetime: 0,
		Revision: "rev-42",
		// Not a whole number of microseconds: durations are kept exactly.
		EvalTime: 1234567 * time.Nanosecond,
		RA:       "ra-lab",
		Node:     "ca-1",
	}
}

func allowed(t *testing.T, i int) *core.DecisionRecord {
	t.Helper()
	d := newDecision(t, i)
	d.Stage, d.Allow, d.Violations = core.StageSign, true, nil
	d.Lifetime = 2160*time.Hour + 1
	d.RA = ""
	return d
}

func normDecision(d *core.DecisionRecord) core.DecisionRecord {
	c := *d
	c.Time = normTime(c.Time)
	c.Identifiers = normIDs(c.Identifiers)
	if len(c.Violations) == 0 {
		c.Violations = nil
	}
	return c
}

// sameDecisions compares a listing with the expected records, in order.
func sameDecisions(t *testing.T, what string, got, want []*core.DecisionRecord) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d entries, want %d", what, len(got), len(want))
	}
	for i := range got {
		checkUTC(t, what, got[i].Time)
		if g, w := normDecision(got[i]), normDecision(want[i]); !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: entry %d:\n got %+v\nwant %+v", what, i, g, w)
		}
	}
}

func testDecisionRecordList(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	recs := []*core.DecisionRecord{newDecision(t, 0), allowed(t, 2), newDecision(t, 1)}
	recs[2].ID = ""
	recs[1].Error = "evaluation timed out"
	noErr(t, "RecordDecisions", s.RecordDecisions(ctx, recs))
	if recs[2].ID == "" {
		t.Fatal("RecordDecisions did not fill in an empty ID")
	}
	if recs[2].ID == recs[0].ID || recs[2].ID == recs[1].ID {
		t.Fatalf("filled-in ID %q is not unique", recs[2].ID)
	}
	got, err := s.ListDecisions(ctx, core.DecisionFilter{})
	noErr(t, "ListDecisions", err)
	sameDecisions(t, "ListDecisions", got, []*core.DecisionRecord{recs[1], recs[2], recs[0]})

	// A second batch is appended, not a replacement.
	more := []*core.DecisionRecord{newDecision(t, 3)}
	more[0].ID = ""
	noErr(t, "RecordDecisions", s.RecordDecisions(ctx, more))
	got, err = s.ListDecisions(ctx, core.DecisionFilter{})
	noErr(t, "ListDecisions", err)
	sameDecisions(t, "after a second batch", got, []*core.DecisionRecord{more[0], recs[1], recs[2], recs[0]})
}

// testDecisionNoTime: an entry without a time is logged at the current
// time, which is written back.
func testDecisionNoTime(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	d := newDecision(t, 0)
	d.Time = time.Time{}
	noErr(t, "RecordDecisions", s.RecordDecisions(ctx, []*core.DecisionRecord{d}))
	if d.Time.IsZero() {
		t.Fatal("RecordDecisions did not fill in a zero Time")
	}
	got, err := s.ListDecisions(ctx, core.DecisionFilter{})
	noErr(t, "ListDecisions", err)
	sameDecisions(t, "ListDecisions", got, []*core.DecisionRecord{d})
}

func testDecisionEmpty(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	noErr(t, "RecordDecisions of nothing", s.RecordDecisions(ctx, nil))
	got, err := s.ListDecisions(ctx, core.DecisionFilter{DeniedOnly: true})
	noErr(t, "ListDecisions", err)
	if len(got) != 0 {
		t.Fatalf("empty log lists %d entries", len(got))
	}
}

func testDecisionFilters(t *testing.T, s store.Store) {
	ctx := ctxT(t)
	// recs[i] is at baseTime + i seconds.
	recs := make([]*core.DecisionRecord, 8)
	for i := range recs {
		if i%2 == 0 {
			recs[i] = newDecision(t, i)
		} else {
			recs[i] = allowed(t, i)
		}
		if i%3 == 0 {
			recs[i].AccountID = "acct-2"
		}
	}
	noErr(t, "RecordDecisions", s.RecordDecisions(ctx, recs))
	newest := func(idx ...int) []*core.DecisionRecord {
		var out []*core.DecisionRecord
		for _, i := range idx {
			out = append(out, recs[i])
		}
		return out
	}
	// As stored: baseTime has sub-microsecond digits.
	since := normTime(baseTime.Add(4 * time.Second))
	tests := []struct {
		name string
		f    core.DecisionFilter
		want []*core.DecisionRecord
	}{
		{"all", core.DecisionFilter{}, newest(7, 6, 5, 4, 3, 2, 1, 0)},
		{"denied", core.DecisionFilter{DeniedOnly: true}, newest(6, 4, 2, 0)},
		// Since is inclusive, to the stored precision.
		{"since", core.DecisionFilter{Since: since}, newest(7, 6, 5, 4)},
		{"since, a nanosecond later", core.DecisionFilter{Since: since.Add(time.Nanosecond)}, newest(7, 6, 5)},
		{"since in another zone", core.DecisionFilter{Since: since.In(time.FixedZone("UTC-3", -3*3600))},
			newest(7, 6, 5, 4)},
		{"account", core.DecisionFilter{AccountID: "acct-2"}, newest(6, 3, 0)},
		{"unknown account", core.DecisionFilter{AccountID: "acct-9"}, nil},
		{"denied since", core.DecisionFilter{DeniedOnly: true, Since: since}, newest(6, 4)},
		{"denied account", core.DecisionFilter{DeniedOnly: true, AccountID: "acct-1"}, newest(4, 2)},
		{"account since", core.DecisionFilter{AccountID: "acct-1", Since: since}, newest(7, 5, 4)},
		{"all filters", core.DecisionFilter{DeniedOnly: true, AccountID: "acct-2", Since: since}, newest(6)},
		{"all filters and a limit", core.DecisionFilter{AccountID: "acct-1", Since: since, Limit: 2}, newest(7, 5)},
	}
	for _, tc := range tests {
		got, err := s.ListDecisions(ctx, tc.f)
		noErr(t, "ListDecisions "+tc.name, err)
		sameDecisions(t, tc.name, got, tc.want)
	}
}

// testDecisionLimit: an explicit limit keeps the newest entries, and no
// limit means 100. (The cap of 10000 is left to the backends' own tests:
// checking it here would mean writing and reading over 10000 entries.)
func testDecisionLimit(t *testing.T, s store.Store) {
	const n = 150
	ctx := ctxT(t)
	recs := make([]*core.DecisionRecord, n)
	for i := range recs {
		recs[i] = allowed(t, i)
		recs[i].ID = ""
	}
	noErr(t, "RecordDecisions", s.RecordDecisions(ctx, recs))
	tests := []struct {
		limit, want int
	}{
		{1, 1},
		{7, 7},
		{0, 100},
		{-1, 100},
		{n - 1, n - 1},
		{n + 1, n},
	}
	for _, tc := range tests {
		got, err := s.ListDecisions(ctx, core.DecisionFilter{Limit: tc.limit})
		noErr(t, fmt.Sprintf("ListDecisions limit %d", tc.limit), err)
		if len(got) != tc.want {
			t.Fatalf("limit %d: %d entries, want %d", tc.limit, len(got), tc.want)
		}
		for i, d := range got {
			if want := recs[n-1-i].ID; d.ID != want {
				t.Fatalf("limit %d: entry %d is %s, want %s (newest first)", tc.limit, i, d.ID, want)
			}
		}
	}
}
