package bootstrap

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/pki"
)

func TestInitWithDatabaseURL(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	const dbURL = "postgres://ca:pw@127.0.0.1:5432/policyca?sslmode=disable"
	res, err := Init(Options{StateDir: state, Listen: "127.0.0.1:9443", ExternalURL: "https://ca.lb.internal:443", DatabaseURL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Load(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.Driver != "postgres" || c.Database.URL != dbURL || c.Database.Path != "" {
		t.Fatalf("database = %+v", c.Database)
	}
	if res.DirectoryURL != "https://ca.lb.internal:443/acme/acme/directory" {
		t.Fatalf("directory URL %q does not come from the external URL", res.DirectoryURL)
	}
	// Every node serves the same certificate, found by clients under the
	// load balancer's name.
	tlsCerts, err := pki.ReadPEMCerts(c.Path(c.TLS.Cert))
	if err != nil {
		t.Fatal(err)
	}
	if err := tlsCerts[0].VerifyHostname("ca.lb.internal"); err != nil {
		t.Fatalf("TLS certificate does not cover the external URL's host: %v", err)
	}
}

func TestInitRefusesBadDatabaseURL(t *testing.T) {
	for _, u := range []string{"mysql://db/x", "postgres://db", "postgres:///x"} {
		state := filepath.Join(t.TempDir(), "state")
		_, err := Init(Options{StateDir: state, Listen: "127.0.0.1:9443", DatabaseURL: u})
		if err == nil || !strings.Contains(err.Error(), "--db") {
			t.Fatalf("%s: err = %v, want a --db error", u, err)
		}
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Fatalf("%s: a refused init left %s behind", u, state)
		}
	}
}
