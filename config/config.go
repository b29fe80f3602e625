package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/policyca/policyca/internal/atomicfile"
)

// Config is the CA's configuration file.
type Config struct {
	// Listen is the address of the HTTPS listener (ACME, /healthz).
	Listen string `json:"listen"`
	// ExternalURL is the base URL clients use (scheme://host[:port]); it
	// defaults to https://<listen>. Every ACME URL is built from it.
	ExternalURL string   `json:"external_url,omitempty"`
	TLS         TLS      `json:"tls"`
	Database    Database `json:"database"`
	Issuer      Issuer   `json:"issuer"`
	// Provisioners are the named ACME endpoints, at least one.
	Provisioners []Provisioner `json:"provisioners"`
	Log          Log           `json:"log,omitempty"`
	// Policy is the Rego bundle that decides every order and signature.
	Policy Policy `json:"policy"`
	// Metrics serves Prometheus metrics (and optionally pprof) on a
	// listener of its own.
	Metrics *Metrics `json:"metrics,omitempty"`
	// Admin enables the admin API (/admin/v1/) for client certificates
	// issued by its own CA.
	Admin *Admin `json:"admin,omitempty"`
	// RAAPI enables the API registration authorities use (/ra/v1/), for
	// client certificates issued by the RA CA.
	RAAPI *RAAPI `json:"ra_api,omitempty"`
	// NodeName names this node in decision records and logs (default
	// hostname/listen). Several nodes on one database need distinct names.
	NodeName string `json:"node_name,omitempty"`
	// StaleProcessing is how long an order may stay "processing" before
	// the node's recovery sweep (at start and every minute) declares its
	// issuance lost, as after a node crashed while signing (default 5m).
	// Every node sweeps the shared database: keep it well above the time
	// one signature takes.
	StaleProcessing Duration `json:"stale_processing,omitempty"`
	// ShutdownTimeout bounds graceful shutdown on SIGTERM (default 15s).
	ShutdownTimeout Duration `json:"shutdown_timeout,omitempty"`

	// dir is the directory relative paths are resolved against; file is
	// the file Load read ("" for Parse).
	dir  string
	file string
}

// File is the path the configuration was loaded from.
func (c *Config) File() string { return c.file }

// TLS is the CA's own listener certificate.
type TLS struct {
	Cert string `json:"cert"` // PEM chain path
	Key  string `json:"key"`  // key URI (file:… or pkcs11:…)
}

// Database selects the store.
type Database struct {
	// Driver is "sqlite" (the default: one node) or "postgres" (one or
	// several nodes sharing the database, DESIGN.md shape 3).
	Driver string `json:"driver"`
	// Path of the SQLite database file (driver sqlite only).
	Path string `json:"path,omitempty"`
	// URL is the PostgreSQL connection URL, postgres://user:pass@host/db
	// (driver postgres only). It holds the password: the file is 0600.
	URL string `json:"url,omitempty"`
}

// Issuer is the certificate and key that sign leaf certificates.
type Issuer struct {
	Cert string `json:"cert"` // PEM: the issuing (intermediate) certificate
	// Chain is an optional PEM file of further intermediates above Cert
	// (not the root), sent to clients after Cert.
	Chain string `json:"chain,omitempty"`
	Key   string `json:"key"`  // key URI
	Root  string `json:"root"` // PEM of the root, for operators and /roots
	// Lint runs zlint on every certificate before the real signature
	// (default true).
	Lint *bool `json:"lint,omitempty"`
	// Backdate moves NotBefore into the past against clock skew (default 1m).
	Backdate Duration `json:"backdate,omitempty"`
}

// Provisioner is one ACME endpoint (/acme/<name>/directory).
type Provisioner struct {
	Name string `json:"name"`
	// Type is "acme".
	Type string `json:"type"`
	// DefaultLifetime of certificates (default 24h); MaxLifetime caps what a
	// client may ask for with notAfter (default = DefaultLifetime).
	DefaultLifetime Duration   `json:"default_lifetime,omitempty"`
	MaxLifetime     Duration   `json:"max_lifetime,omitempty"`
	RequireEAB      bool       `json:"require_eab,omitempty"`
	TermsOfService  string     `json:"terms_of_service,omitempty"`
	Website         string     `json:"website,omitempty"`
	CAAIdentities   []string   `json:"caa_identities,omitempty"`
	Validation      Validation `json:"validation,omitempty"`
}

// Validation configures how challenges are checked for a provisioner.
type Validation struct {
	HTTP01Port    int      `json:"http01_port,omitempty"`    // default 80
	TLSALPN01Port int      `json:"tlsalpn01_port,omitempty"` // default 443
	Resolvers     []string `json:"resolvers,omitempty"`      // host:port; empty = system
	Timeout       Duration `json:"timeout,omitempty"`        // default 10s
}

// Policy configures the policy engine (docs/policy.md).
type Policy struct {
	// Bundle is a bundle directory or .tar.gz file; URL an HTTPS URL of a
	// .tar.gz polled with ETags. Exactly one is set.
	Bundle string `json:"bundle,omitempty"`
	URL    string `json:"url,omitempty"`
	// VerificationKeys, when set, make bundle signatures mandatory.
	VerificationKeys map[string]VerificationKey `json:"verification_keys,omitempty"`
	// PollInterval is how often the bundle is checked for changes (10s).
	PollInterval Duration `json:"poll_interval,omitempty"`
	// EvalTimeout bounds one decision (2s); a timeout denies.
	EvalTimeout Duration `json:"eval_timeout,omitempty"`
}

// VerificationKey is a public key that may sign policy bundles.
type VerificationKey struct {
	Key string `json:"key"` // PEM file
	Alg string `json:"alg"` // ES256, RS256, …
}

// Metrics configures the metrics listener.
type Metrics struct {
	// Listen is host:port of the plain-HTTP metrics listener; keep it on
	// loopback or a management network.
	Listen string `json:"listen"`
	// Pprof also serves /debug/pprof/ there (CPU, heap, mutex profiles).
	Pprof bool `json:"pprof,omitempty"`
}

// Admin configures the admin API.
type Admin struct {
	// ClientCA is the PEM of the CA that issues admin client certificates.
	// It must not be the CA that issues ACME certificates.
	ClientCA string `json:"client_ca"`
}

// RAAPI configures the RA↔CA API (docs/ra.md).
type RAAPI struct {
	// ClientCA is the PEM of the RA CA: it issues RA client certificates
	// at enrolment and nothing else. It must not be the ACME issuer's CA.
	ClientCA string `json:"client_ca"`
	// ClientCAKey is the RA CA's key URI.
	ClientCAKey string `json:"client_ca_key"`
	// CertLifetime of RA client certificates (default 30d); RAs renew at
	// two thirds of it.
	CertLifetime Duration `json:"cert_lifetime,omitempty"`
}

// Log configures structured logging.
type Log struct {
	Level  string `json:"level,omitempty"`  // debug, info (default), warn, error
	Format string `json:"format,omitempty"` // text (default) or json
}

// MaxFileSize bounds the configuration file.
const MaxFileSize = 1 << 20

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxFileSize)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.file = abs
	return c, nil
}

// Parse decodes and validates a configuration document; relative paths are
// resolved against dir.
func Parse(b []byte, dir string) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, describeJSONError(b, err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the configuration object")
	}
	c.dir = dir
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func describeJSONError(b []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line := 1 + bytes.Count(b[:min(int(se.Offset), len(b))], []byte("\n"))
		return fmt.Errorf("line %d: %v", line, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q: expected %s, got JSON %s", te.Field, te.Type, te.Value)
	}
	var ve *valueError
	if errors.As(err, &ve) {
		if field, line, ok := locateValue(b, ve.raw); ok {
			return fmt.Errorf("field %q (line %d): %w", field, line, err)
		}
		return err
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return fmt.Errorf("unknown field %s", strings.TrimPrefix(msg, "json: unknown field "))
	}
	return err
}

// locateValue finds the one member of doc whose value is the JSON text
// raw, and returns its name and line; false when there is none or more
// than one (the error then goes without).
func locateValue(doc, raw []byte) (string, int, bool) {
	re, err := regexp.Compile(`"((?:[^"\\]|\\.)*)"\s*:\s*` + regexp.QuoteMeta(string(raw)) + `\s*[,}\]]`)
	if err != nil {
		return "", 0, false
	}
	m := re.FindAllSubmatchIndex(doc, 2)
	if len(m) != 1 {
		return "", 0, false
	}
	return string(doc[m[0][2]:m[0][3]]), 1 + bytes.Count(doc[:m[0][0]], []byte("\n")), true
}

func (c *Config) applyDefaults() {
	if c.Database.Driver == "" {
		c.Database.Driver = "sqlite"
	}
	if c.StaleProcessing == 0 {
		c.StaleProcessing = Duration(5 * time.Minute)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = Duration(15 * time.Second)
	}
	if c.Issuer.Backdate == 0 {
		c.Issuer.Backdate = Duration(time.Minute)
	}
	for i := range c.Provisioners {
		p := &c.Provisioners[i]
		if p.Type == "" {
			p.Type = "acme"
		}
		if p.DefaultLifetime == 0 {
			p.DefaultLifetime = Duration(24 * time.Hour)
		}
		if p.MaxLifetime == 0 {
			p.MaxLifetime = p.DefaultLifetime
		}
		if p.Validation.HTTP01Port == 0 {
			p.Validation.HTTP01Port = 80
		}
		if p.Validation.TLSALPN01Port == 0 {
			p.Validation.TLSALPN01Port = 443
		}
		if p.Validation.Timeout == 0 {
			p.Validation.Timeout = Duration(10 * time.Second)
		}
	}
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/\[\]-]{0,127}$`)

// CheckPostgresURL checks the form of a PostgreSQL connection URL; errors
// never repeat the URL, which may hold a password.
func CheckPostgresURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return fmt.Errorf("scheme %q, want postgres://", u.Scheme)
	}
	if u.Host == "" && u.Query().Get("host") == "" {
		return errors.New("no host")
	}
	if strings.Trim(u.Path, "/") == "" {
		return errors.New("no database name (postgres://user@host/DBNAME)")
	}
	return nil
}

// Validate checks required fields and values; errors name the field.
func (c *Config) Validate() error {
	var errs []error
	req := func(field, v string) {
		if strings.TrimSpace(v) == "" {
			errs = append(errs, fmt.Errorf("missing required field %q", field))
		}
	}
	req("listen", c.Listen)
	if c.Listen != "" {
		if err := CheckListen(c.Listen, c.ExternalURL); err != nil {
			errs = append(errs, fmt.Errorf("field \"listen\": %w", err))
		}
	}
	if c.ExternalURL != "" {
		u, err := url.Parse(c.ExternalURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("field \"external_url\": must be https://host[:port], got %q", c.ExternalURL))
		}
	}
	req("tls.cert", c.TLS.Cert)
	req("tls.key", c.TLS.Key)
	switch c.Database.Driver {
	case "sqlite":
		req("database.path", c.Database.Path)
		if c.Database.URL != "" {
			errs = append(errs, errors.New("field \"database.url\": only for driver \"postgres\"; driver \"sqlite\" uses database.path"))
		}
	case "postgres":
		req("database.url", c.Database.URL)
		if c.Database.URL != "" {
			if err := CheckPostgresURL(c.Database.URL); err != nil {
				errs = append(errs, fmt.Errorf("field \"database.url\": %w", err))
			}
		}
		if c.Database.Path != "" {
			errs = append(errs, errors.New("field \"database.path\": only for driver \"sqlite\"; driver \"postgres\" uses database.url"))
		}
	default:
		errs = append(errs, fmt.Errorf("field \"database.driver\": unsupported driver %q (want \"sqlite\" or \"postgres\")", c.Database.Driver))
	}
	if c.StaleProcessing.D() < time.Second {
		errs = append(errs, errors.New("field \"stale_processing\": at least 1s"))
	}
	if c.NodeName != "" && !nodeNameRE.MatchString(c.NodeName) {
		errs = append(errs, fmt.Errorf("field \"node_name\": %q is not a valid node name (up to 128 letters, digits and . _ : / -)", c.NodeName))
	}
	req("issuer.cert", c.Issuer.Cert)
	req("issuer.key", c.Issuer.Key)
	req("issuer.root", c.Issuer.Root)
	if c.Admin != nil {
		req("admin.client_ca", c.Admin.ClientCA)
	}
	if c.Metrics != nil {
		req("metrics.listen", c.Metrics.Listen)
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); c.Metrics.Listen != "" && err != nil {
			errs = append(errs, fmt.Errorf("field \"metrics.listen\": %v", err))
		}
	}
	if c.RAAPI != nil {
		req("ra_api.client_ca", c.RAAPI.ClientCA)
		req("ra_api.client_ca_key", c.RAAPI.ClientCAKey)
		if c.RAAPI.CertLifetime != 0 && c.RAAPI.CertLifetime.D() < time.Hour {
			errs = append(errs, errors.New("field \"ra_api.cert_lifetime\": at least 1h"))
		}
	}
	if (c.Policy.Bundle == "") == (c.Policy.URL == "") {
		errs = append(errs, errors.New("field \"policy\": set exactly one of \"policy.bundle\" and \"policy.url\""))
	}
	if c.Policy.URL != "" {
		if u, err := url.Parse(c.Policy.URL); err != nil {
			errs = append(errs, errors.New("field \"policy.url\": not a URL"))
		} else if u.Scheme != "https" || u.Host == "" {
			// Redacted: the URL may hold the bundle server's credentials,
			// in its user info or its query.
			if u.RawQuery != "" {
				u.RawQuery = "REDACTED"
			}
			errs = append(errs, fmt.Errorf("field \"policy.url\": must be an https URL, got %q", u.Redacted()))
		}
	}
	for id, k := range c.Policy.VerificationKeys {
		f := fmt.Sprintf("policy.verification_keys.%s", id)
		req(f+".key", k.Key)
		req(f+".alg", k.Alg)
	}
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("field \"log.level\": unknown level %q", c.Log.Level))
	}
	switch c.Log.Format {
	case "", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("field \"log.format\": unknown format %q", c.Log.Format))
	}
	if len(c.Provisioners) == 0 {
		errs = append(errs, errors.New("missing required field \"provisioners\" (at least one)"))
	}
	seen := map[string]bool{}
	for i, p := range c.Provisioners {
		f := fmt.Sprintf("provisioners[%d]", i)
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("missing required field %q", f+".name"))
		} else if !nameRE.MatchString(p.Name) {
			errs = append(errs, fmt.Errorf("field %q: %q is not a valid name (lower-case letters, digits, '-', '_')", f+".name", p.Name))
		} else if seen[p.Name] {
			errs = append(errs, fmt.Errorf("field %q: duplicate provisioner %q", f+".name", p.Name))
		}
		seen[p.Name] = true
		if p.Type != "acme" {
			errs = append(errs, fmt.Errorf("field %q: unsupported type %q (want \"acme\")", f+".type", p.Type))
		}
		if p.MaxLifetime < p.DefaultLifetime {
			errs = append(errs, fmt.Errorf("field %q: max_lifetime %s is shorter than default_lifetime %s", f+".max_lifetime", p.MaxLifetime.D(), p.DefaultLifetime.D()))
		}
		if p.DefaultLifetime.D() < time.Minute {
			errs = append(errs, fmt.Errorf("field %q: at least 1m", f+".default_lifetime"))
		}
		errs = append(errs, p.Validation.Check(f+".validation.")...)
	}
	return errors.Join(errs...)
}

// CheckListen checks a listen address (the CA's or an RA's): host:port
// with a TCP port, and, on every address (0.0.0.0, [::], no host), an
// externalURL: the URLs handed out come from it, or else from the listen
// address, and https://0.0.0.0:8443/… reaches no one.
func CheckListen(listen, externalURL string) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q is not a TCP port", port)
	}
	if ip := net.ParseIP(host); (host == "" || ip != nil && ip.IsUnspecified()) && externalURL == "" {
		return fmt.Errorf("%q listens on every address, so \"external_url\" "+
			"(the https URL clients use, e.g. https://ca.example.internal:8443) is required", listen)
	}
	return nil
}

// Check checks validation settings (0 is a default, allowed); each error
// names its field, prefix first ("provisioners[0].validation." in
// policyca.json, "validation." in an RA's ra.json).
func (v Validation) Check(prefix string) []error {
	var errs []error
	for _, p := range []struct {
		name string
		port int
	}{{"http01_port", v.HTTP01Port}, {"tlsalpn01_port", v.TLSALPN01Port}} {
		if p.port < 0 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("field %q: port %d out of range", prefix+p.name, p.port))
		}
	}
	for i, r := range v.Resolvers {
		if _, port, err := net.SplitHostPort(r); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("field %q: %q is not host:port", fmt.Sprintf("%sresolvers[%d]", prefix, i), r))
		}
	}
	if v.Timeout.D() < 0 {
		errs = append(errs, fmt.Errorf("field %q: %s is negative", prefix+"timeout", v.Timeout.D()))
	}
	return errs
}

// Path resolves a path from the file against the file's directory.
func (c *Config) Path(p string) string { return ResolvePath(c.dir, p) }

// KeyURI resolves a relative file: key URI against the file's directory.
func (c *Config) KeyURI(uri string) string { return ResolveKeyURI(c.dir, uri) }

// ResolvePath resolves a relative path against dir ("" leaves it as is).
// Every policyca configuration file (CA, RA) resolves its paths this way.
func ResolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) || dir == "" {
		return p
	}
	return filepath.Join(dir, p)
}

// ResolveKeyURI resolves the path of a relative file: key URI against dir;
// other URIs are returned unchanged.
func ResolveKeyURI(dir, uri string) string {
	if rest, ok := strings.CutPrefix(uri, "file:"); ok && !strings.HasPrefix(rest, "/") {
		return "file:" + ResolvePath(dir, rest)
	}
	return uri
}

// BaseURL is the external base URL without a trailing slash.
func (c *Config) BaseURL() string {
	if c.ExternalURL != "" {
		return strings.TrimSuffix(c.ExternalURL, "/")
	}
	return "https://" + c.Listen
}

// Provisioner returns the named provisioner.
func (c *Config) Provisioner(name string) (*Provisioner, bool) {
	for i := range c.Provisioners {
		if c.Provisioners[i].Name == name {
			return &c.Provisioners[i], true
		}
	}
	return nil, false
}

// Write stores the configuration as indented JSON with mode 0600.
func (c *Config) Write(path string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // key URIs hold '&'
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return err
	}
	return atomicfile.Write(path, buf.Bytes(), 0o600)
}
