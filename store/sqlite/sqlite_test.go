package sqlite

import (
	"path/filepath"
	"testing"

	"github.com/policyca/policyca/store"
	"github.com/policyca/policyca/store/storetest"
)

func openTemp(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "policyca.db"), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		t.Helper()
		return openTemp(t)
	})
}
