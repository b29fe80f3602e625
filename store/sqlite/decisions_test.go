package sqlite

import (
	"strings"
	"testing"
)

// TestDecisionLimit covers the cap, which the contract suite leaves to the
// backends (it would need over 10000 entries).
func TestDecisionLimit(t *testing.T) {
	tests := []struct{ in, want int }{
		{-5, 100}, {0, 100}, {1, 1}, {100, 100}, {9999, 9999}, {10000, 10000}, {10001, 10000}, {1 << 40, 10000},
	}
	for _, tc := range tests {
		if got := decisionLimit(tc.in); got != tc.want {
			t.Errorf("decisionLimit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestDecisionPlans: every filter combination is answered from an index,
// in index order, rather than by scanning and sorting the whole log. That
// is why there is one prepared statement per combination.
func TestDecisionPlans(t *testing.T) {
	s := openTemp(t)
	defer s.Close()
	for f := range decFilters {
		plan := queryPlan(t, s, decisionQuery(f))
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "USING INDEX decisions_") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("filters %03b: plan %q does not walk a decisions index", f, p)
		}
	}
}
