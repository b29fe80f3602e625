package sqlite

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// numParams counts the parameters of q: the highest ?N, or the number of
// plain ? marks (the store's SQL has no ? inside string literals).
func numParams(q string) int {
	n, plain := 0, 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			continue
		}
		j := i + 1
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			j++
		}
		if j == i+1 {
			plain++
			continue
		}
		k, _ := strconv.Atoi(q[i+1 : j])
		n = max(n, k)
	}
	return max(n, plain)
}

// queryPlan returns the lines of EXPLAIN QUERY PLAN for q, with every
// parameter NULL (plans do not depend on the values).
func queryPlan(t *testing.T, s *Store, q string) []string {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, make([]any, numParams(q))...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return plan
}

// TestQueryPlans: no statement the store runs reads a whole table or sorts
// one, except the few listed below with their reason, so that a renewal
// storm against a database of millions of certificates costs what it costs
// against an empty one. Every prepared statement is checked, and the
// unprepared queries on growing tables (the RA registry's queries are
// primary-key lookups on a table of a few rows, and the export counts
// whole tables on purpose).
func TestQueryPlans(t *testing.T) {
	s := openTemp(t)
	defer s.Close()

	queries := map[string]string{
		"certificates by order":     sqlCertsByOrder,
		"holds valid authorization": sqlHoldsValidAuthz,
		"prune nonces":              sqlPruneNonces,
	}
	for i, d := range s.statements() {
		queries[fmt.Sprintf("statement %d", i)] = d.query
	}
	// Plans that scan or sort on purpose: a plan line starting with line
	// is accepted when the whole plan contains with.
	allowed := []struct{ line, with, why string }{
		{"SCAN eab_keys", "", "the EAB key listing returns every key: the admin asked for all"},
		{"USE TEMP B-TREE FOR ORDER BY", "SCAN eab_keys", "the same listing, sorted"},
		{"SCAN json_each VIRTUAL TABLE", "", "json_each is the list of IDs the caller passed, not a table"},
		{"USE TEMP B-TREE FOR ORDER BY", "INDEX certificates_revoked",
			"the CRL: revoked certificates still valid, found through the partial index, then sorted"},
		{"USE TEMP B-TREE FOR ORDER BY", "INDEX certificates_order", "the certificates of one order (one, or a few)"},
		{"USE TEMP B-TREE FOR ORDER BY", "INDEX orders_processing",
			"crash recovery: the orders still processing, at start-up and then rarely"},
		{"USE TEMP B-TREE FOR ORDER BY", "INDEX eab_keys_provisioner", "the EAB keys of one provisioner: an admin listing"},
	}
	checked := 0
	for name, q := range queries {
		plan := queryPlan(t, s, q)
		joined := strings.Join(plan, "; ")
	lines:
		for _, line := range plan {
			full := strings.HasPrefix(line, "SCAN ") && !strings.Contains(line, " USING ")
			if !full && !strings.Contains(line, "TEMP B-TREE") {
				continue
			}
			for _, a := range allowed {
				if strings.HasPrefix(line, a.line) && strings.Contains(joined, a.with) {
					continue lines
				}
			}
			t.Errorf("%s: %q in plan %q of\n%s", name, line, joined, q)
		}
		checked++
	}
	if checked < 35 {
		t.Errorf("checked %d statements; the list of statements looks incomplete", checked)
	}
}
