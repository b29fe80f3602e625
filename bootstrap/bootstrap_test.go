package bootstrap

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/pki"
)

func TestInitCreatesAWorkingState(t *testing.T) {
	for _, ks := range []pki.KeySpec{"ecdsa-p256", "ecdsa-p384", "rsa-2048"} {
		t.Run(string(ks), func(t *testing.T) {
			state := filepath.Join(t.TempDir(), "st")
			res, err := Init(Options{StateDir: state, Listen: "127.0.0.1:9443", RootKey: ks, IntermediateKey: ks, Resolvers: []string{"127.0.0.1:53"}})
			if err != nil {
				t.Fatal(err)
			}
			if res.DirectoryURL != "https://127.0.0.1:9443/acme/acme/directory" {
				t.Errorf("directory %q", res.DirectoryURL)
			}
			c, err := config.Load(res.Config)
			if err != nil {
				t.Fatal(err)
			}
			if c.Provisioners[0].Name != "acme" {
				t.Errorf("first provisioner %q", c.Provisioners[0].Name)
			}
			roots, err := pki.ReadPEMCerts(res.Root)
			if err != nil {
				t.Fatal(err)
			}
			inter, err := pki.ReadPEMCerts(c.Path(c.Issuer.Cert))
			if err != nil {
				t.Fatal(err)
			}
			tlsChain, err := pki.ReadPEMCerts(c.Path(c.TLS.Cert))
			if err != nil {
				t.Fatal(err)
			}
			rp := x509.NewCertPool()
			rp.AddCert(roots[0])
			ip := x509.NewCertPool()
			ip.AddCert(inter[0])
			for _, name := range []string{"127.0.0.1", "localhost"} {
				if _, err := tlsChain[0].Verify(x509.VerifyOptions{Roots: rp, Intermediates: ip, DNSName: name}); err != nil {
					t.Errorf("TLS certificate for %s: %v", name, err)
				}
			}
			for _, p := range []string{"keys/root.key", "keys/intermediate.key", "keys/tls.key", "policyca.json"} {
				st, err := os.Stat(filepath.Join(state, p))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s mode %v, want 0600", p, st.Mode().Perm())
				}
			}
			for _, d := range []string{".", "keys", "db"} {
				st, err := os.Stat(filepath.Join(state, d))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o700 {
					t.Errorf("%s mode %v, want 0700", d, st.Mode().Perm())
				}
			}
			if _, err := Init(Options{StateDir: state, Listen: "127.0.0.1:9443"}); !errors.Is(err, ErrExists) {
				t.Errorf("second init: %v, want ErrExists", err)
			}
		})
	}
}

func TestInitRefusesBadInput(t *testing.T) {
	for name, o := range map[string]Options{
		"no state":    {Listen: "127.0.0.1:1"},
		"no listen":   {StateDir: t.TempDir()},
		"bad listen":  {StateDir: t.TempDir(), Listen: "nope"},
		"bad keyspec": {StateDir: t.TempDir(), Listen: "127.0.0.1:1", RootKey: "dsa-1024"},
	} {
		if _, err := Init(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// An option that makes an invalid configuration is refused before anything
// is written: the same state directory then initialises with the option
// corrected (keys already there would be refused, never overwritten).
func TestInitChecksTheConfigurationFirst(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	for name, o := range map[string]Options{
		"http external URL":    {ExternalURL: "http://ca.internal"},
		"resolver, no port":    {Resolvers: []string{"10.0.0.53"}},
		"http-01 port range":   {HTTP01Port: 99999},
		"TLS name not a name":  {TLSNames: []string{"ca.internal", "bad name"}},
		"TLS name empty label": {TLSNames: []string{"a..internal"}},
		"external URL host":    {ExternalURL: "https://a..internal:8443"},
	} {
		o.StateDir, o.Listen = state, "127.0.0.1:1"
		_, err := Init(o)
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		// A refused name is quoted as given, with where it came from.
		if want := map[string]string{
			"TLS name not a name":  `--tls-name "bad name"`,
			"TLS name empty label": `--tls-name "a..internal"`,
			"external URL host":    `external URL host "a..internal"`,
		}[name]; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not contain %q", name, err, want)
		}
		if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s: the state directory was created (%v)", name, err)
		}
	}
	if _, err := Init(Options{StateDir: state, Listen: "127.0.0.1:1", ExternalURL: "https://ca.internal",
		TLSNames: []string{"ca.internal", "*.svc.internal", "10.0.0.1", "[fd00::1]"}}); err != nil {
		t.Fatalf("the corrected options: %v", err)
	}
}

// A --tls-name goes into the TLS certificate in the form it was checked
// in: no trailing dot, lower case, IDNA ASCII.
func TestInitTLSNamesAsChecked(t *testing.T) {
	state := filepath.Join(t.TempDir(), "st")
	if _, err := Init(Options{StateDir: state, Listen: "127.0.0.1:1", ExternalURL: "https://Büro.Example.:8443",
		TLSNames: []string{"CA.Internal.", "café.internal", "[fd00::1]"}}); err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ReadPEMCerts(filepath.Join(state, "certs", "tls.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"ca.internal", "xn--caf-dma.internal", "fd00::1", "localhost", "xn--bro-hoa.example"} {
		if err := certs[0].VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	for _, n := range certs[0].DNSNames {
		if n != strings.ToLower(n) || strings.HasSuffix(n, ".") {
			t.Errorf("DNS name %q not in normal form", n)
		}
	}
}
