package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A directory bundle is its regular files: a symbolic link is not part of
// it (as for the fingerprint Watch compares, so that what is loaded and
// what is watched agree), and a file larger than the budget is refused
// without being read.
func TestSnapshotDir(t *testing.T) {
	dir := policyBundle(t, "snap", `{"allow": true}`)
	outside := filepath.Join(t.TempDir(), "extra.rego")
	if err := os.WriteFile(outside, []byte("package policyca\n\nbroken := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "extra.rego")); err != nil {
		t.Fatal(err)
	}
	e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("a symbolic link was loaded: %v", err)
	}
	if e.Revision() != "snap" {
		t.Fatalf("revision %q", e.Revision())
	}

	// A sparse data.json of 256 MiB against a 1 MiB budget.
	big := policyBundle(t, "big", `{"allow": true}`)
	f, err := os.Create(filepath.Join(big, "data.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := snapshotDir(big, 1<<20); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("snapshot of a bundle over its budget: %v", err)
	}
}
