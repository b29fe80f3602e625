package admin

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/config"
)

// Listed by the running CA, a provisioner added to the configuration
// after the CA started is marked as not served; read from the file alone,
// nothing is said either way.
func TestListProvisionersMarksServed(t *testing.T) {
	state := t.TempDir()
	if _, err := bootstrap.Init(bootstrap.Options{StateDir: state, Listen: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(state, bootstrap.ConfigFile)
	ctx := context.Background()
	running := &Service{ConfigPath: path, Served: map[string]bool{"acme": true}}
	if _, err := running.AddProvisioner(ctx, config.Provisioner{Name: "dev", Type: "acme"}); err != nil {
		t.Fatal(err)
	}
	ps, err := running.ListProvisioners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range ps {
		if p.Served == nil {
			t.Fatalf("%s: served not said", p.Name)
		}
		got[p.Name] = *p.Served
	}
	if len(got) != 2 || !got["acme"] || got["dev"] {
		t.Fatalf("served %v, want acme served and dev not", got)
	}
	offline := &Service{ConfigPath: path}
	ps, err = offline.ListProvisioners(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Served != nil {
			t.Errorf("%s: served %v from the file alone", p.Name, *p.Served)
		}
	}
}
