package bootstrap

import (
	"context"
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/policies"
	"github.com/policyca/policyca/signer"
	"github.com/policyca/policyca/signer/pkcs11"
	"github.com/policyca/policyca/signer/soft"
)

// ConfigFile is the configuration's name inside a state directory.
const ConfigFile = "policyca.json"

// Options are the choices of `policyca init`.
type Options struct {
	StateDir    string
	Listen      string // host:port of the HTTPS listener
	ExternalURL string // optional https://host:port clients use
	// Name is the CA's name, used in the root and intermediate subjects.
	Name                 string
	RootKey              pki.KeySpec
	IntermediateKey      pki.KeySpec
	RootValidity         time.Duration
	IntermediateValidity time.Duration
	// TLSNames are extra DNS names or IPs for the listener's certificate;
	// the listen host, the external URL's host and localhost are always in it.
	TLSNames []string
	// Provisioner settings of the first provisioner, "acme".
	HTTP01Port      int
	TLSALPN01Port   int
	Resolvers       []string
	DefaultLifetime time.Duration
	MaxLifetime     time.Duration

	// KMS is a PKCS#11 token URI (RFC 7512, "pkcs11:token=…?module-path=…
	// &pin-source=…"). When set, the root and intermediate keys are made on
	// the token (non-extractable) as objects RootLabel and IntermediateLabel,
	// and never exist anywhere else. The listener's TLS key stays a file.
	KMS string
	// Existing uses keys already on the token under those labels instead
	// of generating them (which refuses to overwrite a key).
	Existing bool

	// DatabaseURL, when set, is a postgres:// URL: the CA stores its data
	// in that PostgreSQL database (which several nodes may share) instead
	// of the SQLite file in the state directory.
	DatabaseURL string
}

// Labels of the CA keys on a PKCS#11 token.
const (
	RootLabel         = "policyca-root"
	IntermediateLabel = "policyca-intermediate"
)

// KeyURIOnToken names the object label on a token URI: the path gains
// ";object=label", the query (module, PIN source) is kept.
func KeyURIOnToken(tokenURI, label string) (string, error) {
	path, query, _ := strings.Cut(tokenURI, "?")
	if !strings.HasPrefix(path, "pkcs11:") {
		return "", fmt.Errorf("--kms: %s is not a pkcs11: URI", signer.Redact(tokenURI))
	}
	if strings.Contains(path, "object=") || strings.Contains(path, "id=") {
		return "", fmt.Errorf("--kms: give the token URI without object or id; policyca names the keys %s and %s", RootLabel, IntermediateLabel)
	}
	u := path + ";object=" + label
	if query != "" {
		u += "?" + query
	}
	return u, nil
}

// Result says where things are.
type Result struct {
	DirectoryURL string `json:"directory_url"`
	Root         string `json:"root"`
	Config       string `json:"config"`
	State        string `json:"state"`
	Provisioner  string `json:"provisioner"`
	// AdminCert and AdminKey are the local operator's client certificate
	// for the admin API (policyca eab … --ca URL).
	AdminCert string `json:"admin_cert"`
	AdminKey  string `json:"admin_key"`
}

// ErrExists is returned when the state directory already holds a config.
var ErrExists = errors.New("state directory is already initialised")

func (o *Options) defaults() {
	if o.Name == "" {
		o.Name = "policyca"
	}
	if o.RootKey == "" {
		o.RootKey = "ecdsa-p256"
	}
	if o.IntermediateKey == "" {
		o.IntermediateKey = "ecdsa-p256"
	}
	if o.RootValidity == 0 {
		o.RootValidity = 10 * 365 * 24 * time.Hour
	}
	if o.IntermediateValidity == 0 {
		o.IntermediateValidity = 5 * 365 * 24 * time.Hour
	}
	if o.DefaultLifetime == 0 {
		o.DefaultLifetime = 24 * time.Hour
	}
	if o.MaxLifetime == 0 {
		o.MaxLifetime = 90 * 24 * time.Hour
	}
	if o.MaxLifetime < o.DefaultLifetime {
		o.MaxLifetime = o.DefaultLifetime
	}
}

// ConfigPath returns the configuration path inside a state directory.
func ConfigPath(stateDir string) string { return filepath.Join(stateDir, ConfigFile) }

// Initialised reports whether stateDir already holds a configuration.
func Initialised(stateDir string) bool {
	_, err := os.Stat(ConfigPath(stateDir))
	return err == nil
}

// Init creates a new CA in o.StateDir. It refuses to touch a state
// directory that already has a configuration.
func Init(o Options) (*Result, error) {
	o.defaults()
	if o.StateDir == "" {
		return nil, errors.New("no state directory given")
	}
	if o.Listen == "" {
		return nil, errors.New("no listen address given")
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	for _, ks := range []pki.KeySpec{o.RootKey, o.IntermediateKey} {
		if _, err := pki.ParseKeySpec(string(ks)); err != nil {
			return nil, err
		}
	}
	dnsNames, ips, err := tlsNames(host, o)
	if err != nil {
		return nil, err
	}
	db := config.Database{Driver: "sqlite", Path: "db/policyca.db"}
	if o.DatabaseURL != "" {
		// Checked before anything is created, so a typo leaves no
		// half-made state directory behind.
		if err := config.CheckPostgresURL(o.DatabaseURL); err != nil {
			return nil, fmt.Errorf("--db: %w", err)
		}
		db = config.Database{Driver: "postgres", URL: o.DatabaseURL}
	}
	state, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	// The configuration is checked before anything is created (with a
	// stand-in for the issuing key, which is made below), so that a bad
	// option leaves no keys behind that a second try would refuse to
	// overwrite.
	if b, err := json.Marshal(newConfig(o, db, "file:keys/intermediate.key")); err != nil {
		return nil, err
	} else if _, err := config.Parse(b, state); err != nil {
		return nil, fmt.Errorf("the configuration these options make is invalid: %w", err)
	}
	if Initialised(state) {
		return nil, fmt.Errorf("%s: %w", state, ErrExists)
	}
	for _, d := range []string{state, filepath.Join(state, "keys"), filepath.Join(state, "certs"), filepath.Join(state, "db")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return nil, err
		}
	}

	now := time.Now()
	subject := func(cn string) pkix.Name {
		return pkix.Name{CommonName: cn, Organization: []string{o.Name}}
	}
	rootKey, intKey, intKeyURI, err := caKeys(o)
	if err != nil {
		return nil, err
	}
	// HSM signers hold a session to the token: release it, the CA
	// process opens its own.
	defer closeSigner(rootKey)
	defer closeSigner(intKey)
	root, err := pki.NewRoot(rootKey, subject(o.Name+" Root CA "+now.Format("2006")), o.RootValidity)
	if err != nil {
		return nil, err
	}
	inter, err := pki.NewIntermediate(root, rootKey, intKey.Public(), subject(o.Name+" Intermediate CA "+now.Format("2006")), o.IntermediateValidity, 0)
	if err != nil {
		return nil, err
	}

	tlsKey, err := pki.GenerateKey("ecdsa-p256")
	if err != nil {
		return nil, err
	}
	tlsCert, err := pki.IssueTLSServer(inter, intKey, tlsKey.Public(), dnsNames, ips, minDur(o.IntermediateValidity, 365*24*time.Hour))
	if err != nil {
		return nil, err
	}

	type stateFile struct {
		path string
		key  crypto.Signer
		cert []*x509.Certificate
	}
	// The admin CA is a root of its own: nothing the ACME intermediate
	// issues can pass as an operator's certificate.
	adminCAKey, err := pki.GenerateKey("ecdsa-p256")
	if err != nil {
		return nil, err
	}
	adminCA, err := pki.NewRoot(adminCAKey, subject(o.Name+" Admin CA"), o.RootValidity)
	if err != nil {
		return nil, err
	}
	adminKey, err := pki.GenerateKey("ecdsa-p256")
	if err != nil {
		return nil, err
	}
	adminCert, err := pki.IssueClient(adminCA, adminCAKey, adminKey.Public(), pkix.Name{CommonName: "policyca admin", Organization: []string{o.Name}}, 2*365*24*time.Hour)
	if err != nil {
		return nil, err
	}
	// The RA CA, another root of its own, issues the client certificates
	// of registration authorities at enrolment (docs/ra.md): an ACME
	// certificate can never pose as an RA, nor an RA as an operator.
	raCAKey, err := pki.GenerateKey("ecdsa-p256")
	if err != nil {
		return nil, err
	}
	raCA, err := pki.NewRoot(raCAKey, subject(o.Name+" RA CA"), o.RootValidity)
	if err != nil {
		return nil, err
	}
	files := []stateFile{
		{path: filepath.Join(state, "keys", "ra-ca.key"), key: raCAKey},
		{path: filepath.Join(state, "certs", "ra-ca.pem"), cert: []*x509.Certificate{raCA}},
		{path: filepath.Join(state, "keys", "admin-ca.key"), key: adminCAKey},
		{path: filepath.Join(state, "keys", "admin.key"), key: adminKey},
		{path: filepath.Join(state, "certs", "admin-ca.pem"), cert: []*x509.Certificate{adminCA}},
		{path: filepath.Join(state, "certs", "admin.pem"), cert: []*x509.Certificate{adminCert}},
		{path: filepath.Join(state, "keys", "tls.key"), key: tlsKey},
		{path: filepath.Join(state, "certs", "root.pem"), cert: []*x509.Certificate{root}},
		{path: filepath.Join(state, "certs", "intermediate.pem"), cert: []*x509.Certificate{inter}},
		{path: filepath.Join(state, "certs", "tls.pem"), cert: []*x509.Certificate{tlsCert, inter}},
	}
	if o.KMS == "" {
		files = append(files,
			stateFile{path: filepath.Join(state, "keys", "root.key"), key: rootKey},
			stateFile{path: filepath.Join(state, "keys", "intermediate.key"), key: intKey})
	}
	for _, f := range files {
		if f.key != nil {
			err = soft.WriteKey(f.path, f.key, nil)
		} else {
			err = pki.WritePEMCert(f.path, f.cert...)
		}
		if err != nil {
			return nil, err
		}
	}

	c := newConfig(o, db, intKeyURI)
	// The default policy bundle, as an editable copy: operators keep it
	// in git, test it with `policyca policy test`, and the CA reloads it
	// when it changes.
	if err := policies.WriteDefault(filepath.Join(state, "policy")); err != nil {
		return nil, fmt.Errorf("writing the default policy bundle: %w", err)
	}
	cfgPath := ConfigPath(state)
	if err := c.Write(cfgPath); err != nil {
		return nil, err
	}
	// Validate what we wrote exactly as `policyca ca` will read it.
	loaded, err := config.Load(cfgPath)
	if err != nil {
		os.Remove(cfgPath)
		return nil, fmt.Errorf("generated configuration is invalid: %w", err)
	}
	return &Result{
		DirectoryURL: loaded.BaseURL() + "/acme/acme/directory",
		Root:         filepath.Join(state, "certs", "root.pem"),
		Config:       cfgPath,
		State:        state,
		Provisioner:  "acme",
		AdminCert:    filepath.Join(state, "certs", "admin.pem"),
		AdminKey:     filepath.Join(state, "keys", "admin.key"),
	}, nil
}

// certName is n in the form a certificate carries it: an IP address as
// written (brackets removed), or a DNS name checked and normalised as an
// ACME identifier would be (lower case, no trailing dot, IDNA ASCII;
// "*.example.internal" allowed, "bad name" or "a..b" refused).
func certName(n string) (string, error) {
	h := strings.Trim(n, "[]")
	if net.ParseIP(h) != nil {
		return h, nil
	}
	id, err := core.NormalizeIdentifier(core.Identifier{Type: core.DNS, Value: h})
	if err != nil {
		return "", fmt.Errorf("not an IP address or a DNS name: %w", err)
	}
	return id.Value, nil
}

// tlsNames returns the names init puts in the TLS certificate, normalised.
// It runs before anything is created: a name an option gave (--tls-name,
// the external URL's host, the listen host) that is neither an IP address
// nor a DNS name is an error naming its source; the built-in names and the
// machine's host name, which no option gave, are left out if they are not.
func tlsNames(listenHost string, o Options) ([]string, []net.IP, error) {
	var dns []string
	var ips []net.IP
	seen := map[string]bool{}
	add := func(source, n string) error {
		if n == "" {
			return nil
		}
		name, err := certName(n)
		if err != nil {
			if source == "" {
				return nil
			}
			return fmt.Errorf("%s %q: %w", source, n, err)
		}
		n = name
		if seen[n] {
			return nil
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil {
			if !ip.IsUnspecified() {
				ips = append(ips, ip)
			}
			return nil
		}
		dns = append(dns, n)
		return nil
	}
	for _, n := range []string{"localhost", "127.0.0.1", "::1"} {
		_ = add("", n)
	}
	if err := add("listen host", listenHost); err != nil {
		return nil, nil, err
	}
	if o.ExternalURL != "" {
		if u, err := url.Parse(o.ExternalURL); err == nil {
			if err := add("external URL host", u.Hostname()); err != nil {
				return nil, nil, err
			}
		}
	}
	if listenHost == "" || net.ParseIP(listenHost) != nil && net.ParseIP(listenHost).IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			_ = add("", h)
		}
	}
	for _, n := range o.TLSNames {
		if err := add("--tls-name", n); err != nil {
			return nil, nil, err
		}
	}
	return dns, ips, nil
}

func minDur(a, b time.Duration) time.Duration {
	if a < b {
		return a
	}
	return b
}

// caKeys makes (or, with --existing, finds) the root and intermediate keys:
// files by default, objects on the PKCS#11 token with --kms.
func caKeys(o Options) (root, inter crypto.Signer, interURI string, err error) {
	if o.KMS == "" {
		if root, err = pki.GenerateKey(o.RootKey); err != nil {
			return nil, nil, "", err
		}
		if inter, err = pki.GenerateKey(o.IntermediateKey); err != nil {
			return nil, nil, "", err
		}
		return root, inter, "file:keys/intermediate.key", nil
	}
	ctx := context.Background()
	rootURI, err := KeyURIOnToken(o.KMS, RootLabel)
	if err != nil {
		return nil, nil, "", err
	}
	if interURI, err = KeyURIOnToken(o.KMS, IntermediateLabel); err != nil {
		return nil, nil, "", err
	}
	if o.Existing {
		if root, err = pkcs11.Open(ctx, rootURI); err != nil {
			return nil, nil, "", fmt.Errorf("--existing: root key: %w", err)
		}
		if inter, err = pkcs11.Open(ctx, interURI); err != nil {
			return nil, nil, "", fmt.Errorf("--existing: intermediate key: %w", err)
		}
		return root, inter, interURI, nil
	}
	hint := func(err error) error {
		if errors.Is(err, pkcs11.ErrKeyExists) {
			return fmt.Errorf("%w: to build the CA on the keys already on the token, add --existing", err)
		}
		return err
	}
	if root, err = pkcs11.GenerateKey(ctx, rootURI, o.RootKey); err != nil {
		return nil, nil, "", fmt.Errorf("root key: %w", hint(err))
	}
	if inter, err = pkcs11.GenerateKey(ctx, interURI, o.IntermediateKey); err != nil {
		return nil, nil, "", fmt.Errorf("intermediate key: %w", hint(err))
	}
	return root, inter, interURI, nil
}

func closeSigner(s crypto.Signer) {
	if c, ok := s.(io.Closer); ok {
		c.Close()
	}
}

// newConfig is the configuration Init writes, with intKeyURI as the
// issuing key.
func newConfig(o Options, db config.Database, intKeyURI string) *config.Config {
	return &config.Config{
		Listen:      o.Listen,
		ExternalURL: o.ExternalURL,
		TLS:         config.TLS{Cert: "certs/tls.pem", Key: "file:keys/tls.key"},
		Database:    db,
		Issuer: config.Issuer{
			Cert: "certs/intermediate.pem",
			Key:  intKeyURI,
			Root: "certs/root.pem",
		},
		Admin:  &config.Admin{ClientCA: "certs/admin-ca.pem"},
		RAAPI:  &config.RAAPI{ClientCA: "certs/ra-ca.pem", ClientCAKey: "file:keys/ra-ca.key"},
		Policy: config.Policy{Bundle: "policy"},
		Provisioners: []config.Provisioner{{
			Name:            "acme",
			Type:            "acme",
			DefaultLifetime: config.Duration(o.DefaultLifetime),
			MaxLifetime:     config.Duration(o.MaxLifetime),
			Validation: config.Validation{
				HTTP01Port:    o.HTTP01Port,
				TLSALPN01Port: o.TLSALPN01Port,
				Resolvers:     o.Resolvers,
			},
		}},
	}
}
