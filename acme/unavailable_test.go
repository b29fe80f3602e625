package acme

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/store"
)

// TestWriteErrorUnavailable: a database outage, however it reached the
// edge, is serverInternal with Retry-After and a detail that says so.
func TestWriteErrorUnavailable(t *testing.T) {
	s := &Server{log: discardLogger()}
	down := fmt.Errorf("%w: dial tcp 127.0.0.1:5432: connection refused", store.ErrUnavailable)
	tests := []struct {
		name      string
		err       error
		wantRetry string
	}{
		{"through storeError", storeError(down, "cannot load order"), "2"},
		{"untyped", down, "2"},
		{"longer retry kept", &core.Error{Kind: core.KindServerInternal, Detail: "x", RetryAfter: 9}, "9"},
	}
	tests[2].err = errors.Join(tests[2].err, down)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			s.writeError(w, httptest.NewRequest(http.MethodPost, "/", nil), tc.err)
			if w.Code != http.StatusInternalServerError {
				t.Fatalf("status %d", w.Code)
			}
			if got := w.Header().Get("Retry-After"); got != tc.wantRetry {
				t.Fatalf("Retry-After = %q, want %q", got, tc.wantRetry)
			}
			var p Problem
			if err := json.NewDecoder(w.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
			if p.Type != problemPrefix+"serverInternal" || p.Detail != "the database is temporarily unavailable; retry later" {
				t.Fatalf("problem %+v", p)
			}
		})
	}
	// Other internal errors keep their detail and get no Retry-After.
	w := httptest.NewRecorder()
	s.writeError(w, httptest.NewRequest(http.MethodPost, "/", nil), errors.New("disk on fire"))
	if w.Header().Get("Retry-After") != "" {
		t.Fatalf("Retry-After on a non-outage error")
	}
}
