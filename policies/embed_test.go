package policies

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteDefault(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "policy")
	if err := WriteDefault(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{".manifest", "data.json", "names.rego"} {
		want, err := os.ReadFile(filepath.Join("rego", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("%s not written: %v", f, err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the source tree's", f)
		}
	}
	if err := WriteDefault(dir); err == nil {
		t.Fatal("overwrote an existing bundle")
	}
}
