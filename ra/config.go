package ra

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/internal/atomicfile"
	"github.com/policyca/policyca/raapi"
)

// ConfigFile is the RA configuration's name inside its state directory.
const ConfigFile = "ra.json"

// Config is the configuration of `policyca ra`, written by `policyca ra
// enroll`. Relative paths are relative to the file's directory.
type Config struct {
	// Name is the RA's name on the CA (its client certificate's CN).
	Name string `json:"name"`
	// CAURL is the CA's base URL; CARoot the pinned root (PEM).
	CAURL  string `json:"ca_url"`
	CARoot string `json:"ca_root"`
	// ClientCert (PEM) and ClientKey (key URI: file:… or pkcs11:…) are
	// the RA's identity towards the CA.
	ClientCert string `json:"client_cert"`
	ClientKey  string `json:"client_key"`
	// Listen is the ACME listener; ExternalURL the base URL clients use
	// (default https://<listen>).
	Listen      string `json:"listen"`
	ExternalURL string `json:"external_url,omitempty"`
	// ListenerCert/ListenerKey: the listener's certificate, issued by the
	// CA at enrolment and renewed by the RA.
	ListenerCert  string   `json:"listener_cert"`
	ListenerKey   string   `json:"listener_key"`
	ListenerNames []string `json:"listener_names"`
	// Issuer caches the CA's issuing certificate (PEM).
	Issuer string `json:"issuer"`
	// Database is the RA's SQLite file (its own accounts and orders).
	Database string `json:"database"`
	// PolicyBundle caches the CA's policy bundle: the RA decides orders
	// with it, and keeps the last good one while the CA is unreachable.
	PolicyBundle string `json:"policy_bundle"`
	// VerificationKeys make bundle signatures mandatory, as on the CA.
	VerificationKeys map[string]config.VerificationKey `json:"verification_keys,omitempty"`
	// PollInterval: how often the bundle is fetched from the CA (30s).
	PollInterval config.Duration `json:"poll_interval,omitempty"`
	// Provisioners the CA assigned, as it last described them.
	Provisioners []raapi.ProvisionerInfo `json:"provisioners"`
	// Validation is how this RA reaches its network's clients: resolvers,
	// ports, timeout.
	Validation config.Validation `json:"validation,omitempty"`
	Log        config.Log        `json:"log,omitempty"`

	dir string
}

// LoadConfig reads and checks an RA configuration (unknown fields are
// errors).
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c.dir = filepath.Dir(abs)
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

func (c *Config) validate() error {
	var errs []error
	req := func(f, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("missing required field %q", f))
		}
	}
	req("name", c.Name)
	req("ca_url", c.CAURL)
	req("ca_root", c.CARoot)
	req("client_cert", c.ClientCert)
	req("client_key", c.ClientKey)
	req("listen", c.Listen)
	req("listener_cert", c.ListenerCert)
	req("listener_key", c.ListenerKey)
	req("database", c.Database)
	req("policy_bundle", c.PolicyBundle)
	if c.Listen != "" {
		if err := config.CheckListen(c.Listen, c.ExternalURL); err != nil {
			errs = append(errs, fmt.Errorf("field \"listen\": %w", err))
		}
	}
	if len(c.Provisioners) == 0 {
		errs = append(errs, errors.New("no provisioners: the CA assigned none to this RA"))
	}
	errs = append(errs, c.Validation.Check("validation.")...)
	return errors.Join(errs...)
}

// Path resolves p against the configuration's directory.
func (c *Config) Path(p string) string { return config.ResolvePath(c.dir, p) }

// KeyURI resolves a relative file: key URI.
func (c *Config) KeyURI(uri string) string { return config.ResolveKeyURI(c.dir, uri) }

// BaseURL is the ACME base URL clients use.
func (c *Config) BaseURL() string {
	if c.ExternalURL != "" {
		return strings.TrimSuffix(c.ExternalURL, "/")
	}
	return "https://" + c.Listen
}

func (c *Config) pollInterval() time.Duration {
	if c.PollInterval > 0 {
		return c.PollInterval.D()
	}
	return 30 * time.Second
}

// Write stores the configuration (mode 0600).
func (c *Config) Write(path string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return err
	}
	return atomicfile.Write(path, buf.Bytes(), 0o600)
}
