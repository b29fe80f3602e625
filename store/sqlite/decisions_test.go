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
		args := []any{}
		if f&decSince != 0 {
			args = append(args, 1)
		}
		if f&decAccount != 0 {
			args = append(args, "acct")
		}
		rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+decisionQuery(f), append(args, 10)...)
		if err != nil {
			t.Fatalf("filters %03b: %v", f, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatalf("filters %03b: %v", f, err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("filters %03b: %v", f, err)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "USING INDEX decisions_") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("filters %03b: plan %q does not walk a decisions index", f, p)
		}
	}
}
