package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const good = `{
  "listen": "127.0.0.1:8443",
  "tls": {"cert": "tls.pem", "key": "file:tls.key"},
  "database": {"path": "ca.db"},
  "issuer": {"cert": "int.pem", "key": "file:/abs/int.key", "root": "root.pem"},
  "policy": {"bundle": "policy"},
  "provisioners": [{"name": "acme", "default_lifetime": "24h", "max_lifetime": "7d",
     "validation": {"http01_port": 5002, "resolvers": ["127.0.0.1:5353"], "timeout": "3s"}}]
}`

func TestParseGood(t *testing.T) {
	c, err := Parse([]byte(good), "/state")
	if err != nil {
		t.Fatal(err)
	}
	p, ok := c.Provisioner("acme")
	if !ok {
		t.Fatal("provisioner acme missing")
	}
	if p.MaxLifetime.D() != 7*24*time.Hour || p.DefaultLifetime.D() != 24*time.Hour {
		t.Errorf("lifetimes: %v %v", p.MaxLifetime.D(), p.DefaultLifetime.D())
	}
	if p.Validation.HTTP01Port != 5002 || p.Validation.TLSALPN01Port != 443 || p.Validation.Timeout.D() != 3*time.Second {
		t.Errorf("validation defaults: %+v", p.Validation)
	}
	if got := c.Path(c.TLS.Cert); got != "/state/tls.pem" {
		t.Errorf("Path = %q", got)
	}
	if got := c.KeyURI(c.TLS.Key); got != "file:/state/tls.key" {
		t.Errorf("KeyURI = %q", got)
	}
	if got := c.KeyURI(c.Issuer.Key); got != "file:/abs/int.key" {
		t.Errorf("KeyURI abs = %q", got)
	}
	if c.BaseURL() != "https://127.0.0.1:8443" {
		t.Errorf("BaseURL = %q", c.BaseURL())
	}
	if c.Database.Driver != "sqlite" {
		t.Errorf("driver default = %q", c.Database.Driver)
	}
}

func TestListenOnEveryAddressWithExternalURL(t *testing.T) {
	doc := strings.Replace(good, `"listen": "127.0.0.1:8443"`, `"listen": "0.0.0.0:8443", "external_url": "https://ca.example.internal:8443"`, 1)
	c, err := Parse([]byte(doc), "/state")
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseURL() != "https://ca.example.internal:8443" {
		t.Errorf("BaseURL = %q", c.BaseURL())
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown top-level", strings.Replace(good, `"listen"`, `"listne": "x", "listen"`, 1), `unknown field "listne"`},
		{"unknown nested", strings.Replace(good, `"http01_port"`, `"http_01_port": 1, "http01_port"`, 1), `unknown field "http_01_port"`},
		{"missing listen", strings.Replace(good, `"listen": "127.0.0.1:8443",`, ``, 1), `"listen"`},
		{"missing tls.key", strings.Replace(good, `, "key": "file:tls.key"`, ``, 1), `"tls.key"`},
		{"missing issuer.root", strings.Replace(good, `, "root": "root.pem"`, ``, 1), `"issuer.root"`},
		{"no provisioners", good[:strings.Index(good, `,
  "provisioners"`)] + "}", `"provisioners"`},
		{"bad duration", strings.Replace(good, `"7d"`, `"seven days"`, 1), `invalid duration`},
		{"bad duration names the field", strings.Replace(good, `"7d"`, `"seven days"`, 1), `field "max_lifetime" (line `},
		{"duration number", strings.Replace(good, `"7d"`, `7`, 1), `field "max_lifetime" (line `},
		{"duration number says what", strings.Replace(good, `"7d"`, `7`, 1), `duration must be a string`},
		{"max < default", strings.Replace(good, `"7d"`, `"1h"`, 1), `provisioners[0].max_lifetime`},
		{"bad port", strings.Replace(good, `5002`, `70000`, 1), `provisioners[0].validation.http01_port`},
		{"bad resolver", strings.Replace(good, `127.0.0.1:5353`, `nope`, 1), `provisioners[0].validation.resolvers[0]`},
		{"bad name", strings.Replace(good, `"name": "acme"`, `"name": "Bad Name"`, 1), `provisioners[0].name`},
		{"bad driver", strings.Replace(good, `{"path": "ca.db"}`, `{"driver": "mysql", "path": "x"}`, 1), `database.driver`},
		{"wrong type", strings.Replace(good, `5002`, `"5002"`, 1), `http01_port`},
		{"syntax", good[:40], `unexpected EOF`},
		{"trailing", good + `{}`, `trailing data`},
		{"no policy", strings.Replace(good, `"policy": {"bundle": "policy"},`, ``, 1), `policy.bundle`},
		{"policy both", strings.Replace(good, `{"bundle": "policy"}`, `{"bundle": "policy", "url": "https://x/b.tar.gz"}`, 1), `exactly one`},
		{"policy http url", strings.Replace(good, `{"bundle": "policy"}`, `{"url": "http://x/b.tar.gz"}`, 1), `policy.url`},
		{"policy key alg", strings.Replace(good, `{"bundle": "policy"}`, `{"bundle": "p", "verification_keys": {"k1": {"key": "k.pem"}}}`, 1), `policy.verification_keys.k1.alg`},
		{"external url", strings.Replace(good, `"listen"`, `"external_url": "http://x", "listen"`, 1), `external_url`},
		// On every address, the URLs handed out need external_url.
		{"listen on every IPv4 address", strings.Replace(good, `"127.0.0.1:8443"`, `"0.0.0.0:8443"`, 1), `"external_url" (the https URL clients use`},
		{"listen on every address", strings.Replace(good, `"127.0.0.1:8443"`, `":8443"`, 1), `"external_url" (the https URL clients use`},
		{"listen on every IPv6 address", strings.Replace(good, `"127.0.0.1:8443"`, `"[::]:8443"`, 1), `"external_url" (the https URL clients use`},
		{"listen port", strings.Replace(good, `"127.0.0.1:8443"`, `"127.0.0.1:99999"`, 1), `not a TCP port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "/state")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestWriteLoadRoundTrip(t *testing.T) {
	c, err := Parse([]byte(good), "/state")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "policyca.json")
	// A leftover temporary file of an earlier, interrupted write, readable
	// by all, does not lend its mode to the configuration.
	if err := os.WriteFile(p+".tmp", []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Write(p); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(p + ".tmp-*"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	c2, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Path("ca.db") != filepath.Join(dir, "ca.db") {
		t.Errorf("relative path against file dir: %q", c2.Path("ca.db"))
	}
	if c2.Provisioners[0].MaxLifetime != c.Provisioners[0].MaxLifetime {
		t.Errorf("round trip lost max_lifetime")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "1.5d": 36 * time.Hour,
		"90m": 90 * time.Minute, "106751d": 106751 * 24 * time.Hour, " 2d ": 48 * time.Hour,
		// The forms Go's syntax takes for hours.
		".5d": 12 * time.Hour, "1.d": 24 * time.Hour, "+1d": 24 * time.Hour} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "d", "-1h", "-2d", "1x", "1hd",
		// Days that are not plain decimals, or overflow a time.Duration.
		"1e300d", "INFd", "Infd", "NaNd", "0x10d", "200000d", "106752d", "1_0d", "1e1d", "-.5d", "..5d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

func TestLocateValue(t *testing.T) {
	doc := []byte("{\n \"a\": \"x\",\n \"b\": {\"c\\\"d\": 7},\n \"e\": \"x\"\n}")
	if f, line, ok := locateValue(doc, []byte("7")); !ok || f != `c\"d` || line != 3 {
		t.Errorf("7: %q %d %v", f, line, ok)
	}
	// The same text twice: which field is unknown, so none is named.
	if _, _, ok := locateValue(doc, []byte(`"x"`)); ok {
		t.Error(`"x" located`)
	}
	if _, _, ok := locateValue(doc, []byte(`"y"`)); ok {
		t.Error(`"y" located`)
	}
}
