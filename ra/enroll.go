package ra

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/core"
	"github.com/policyca/policyca/internal/atomicfile"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/raapi"
	"github.com/policyca/policyca/signer"
	"github.com/policyca/policyca/signer/soft"
)

// EnrollOptions are the choices of `policyca ra enroll`.
type EnrollOptions struct {
	Token    string
	StateDir string
	Listen   string
	// ExternalURL is the base URL the RA's clients use (default
	// https://<listen>).
	ExternalURL string
	// KeyURI, if set (e.g. a pkcs11: URI), is the RA's client key;
	// otherwise a software key is made in the state directory.
	KeyURI string
	// ListenerNames are the DNS names or IPs of the listener's
	// certificate (default: the listen host and the external URL's host).
	ListenerNames []string
	Validation    config.Validation
}

// Enroll redeems an enrolment token: it pins the CA's root by the token's
// fingerprint, makes the RA's key, gets its client and listener
// certificates and the policy bundle from the CA, and writes the RA's
// configuration. It refuses a state directory that is already enrolled.
func Enroll(ctx context.Context, o EnrollOptions) (*Config, error) {
	tok, err := raapi.ParseToken(o.Token)
	if err != nil {
		return nil, err
	}
	if o.StateDir == "" || o.Listen == "" {
		return nil, errors.New("enroll: a state directory and a listen address are required")
	}
	// Everything local is checked before the token is redeemed: a token
	// is good for one enrolment, and a state directory that is enrolled
	// cannot be enrolled again.
	if err := config.CheckListen(o.Listen, o.ExternalURL); err != nil {
		return nil, fmt.Errorf("--listen: %w", err)
	}
	host, port, _ := net.SplitHostPort(o.Listen)
	if port == "0" {
		return nil, errors.New("--listen: give the port the RA's clients connect to, not 0")
	}
	if o.ExternalURL != "" {
		if u, err := url.Parse(o.ExternalURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("--external-url: %q is not an https URL", o.ExternalURL)
		}
	}
	if errs := o.Validation.Check(""); len(errs) > 0 {
		return nil, fmt.Errorf("validation settings: %w", errors.Join(errs...))
	}
	state, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(state, ConfigFile)
	if _, err := os.Stat(cfgPath); err == nil {
		return nil, fmt.Errorf("%s: already enrolled", state)
	}
	for _, d := range []string{state, filepath.Join(state, "keys"), filepath.Join(state, "certs"), filepath.Join(state, "db"), filepath.Join(state, "policy")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	root, err := pinnedRoot(ctx, tok)
	if err != nil {
		return nil, err
	}

	cfg := &Config{
		CAURL: tok.CAURL, CARoot: "certs/ca-root.pem", ClientCert: "certs/client.pem", ClientKey: "file:keys/client.key",
		Listen: o.Listen, ExternalURL: o.ExternalURL, ListenerCert: "certs/listener.pem", ListenerKey: "file:keys/listener.key",
		Issuer: "certs/issuer.pem", Database: "db/ra.db", PolicyBundle: "policy/bundle.tar.gz", Validation: o.Validation,
		dir: state,
	}
	var key crypto.Signer
	if o.KeyURI != "" {
		cfg.ClientKey = o.KeyURI
		if key, err = signer.Open(ctx, o.KeyURI); err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
	} else if key, err = newKeyFile(cfg.Path("keys/client.key")); err != nil {
		return nil, err
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, err
	}
	resp, err := enrollCall(ctx, tok, root, raapi.EnrollRequest{TokenID: tok.ID, Secret: tok.Secret, CSR: csr})
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParsePEMCerts(resp.ChainPEM)
	if err != nil {
		return nil, err
	}
	cfg.Name, cfg.Provisioners = resp.Config.Name, resp.Config.Provisioners
	if len(cfg.Provisioners) == 0 {
		return nil, fmt.Errorf("the CA assigned no provisioner to RA %q", cfg.Name)
	}
	if err := pki.WritePEMCert(cfg.Path(cfg.CARoot), root); err != nil {
		return nil, err
	}
	if err := pki.WritePEMCert(cfg.Path(cfg.ClientCert), certs...); err != nil {
		return nil, err
	}

	client, err := NewClient(ClientOptions{CAURL: tok.CAURL, Root: root, Cert: tlsCert(certs, key)})
	if err != nil {
		return nil, err
	}
	defer client.CloseIdle()
	iss, err := client.FetchIssuer(ctx)
	if err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if err := pki.WritePEMCert(cfg.Path(cfg.Issuer), iss); err != nil {
		return nil, err
	}
	cfg.ListenerNames = o.ListenerNames
	if len(cfg.ListenerNames) == 0 {
		cfg.ListenerNames = defaultListenerNames(host, o.ExternalURL)
	}
	lkey, err := newKeyFile(cfg.Path("keys/listener.key"))
	if err != nil {
		return nil, err
	}
	if err := renewListener(ctx, client, cfg, lkey); err != nil {
		return nil, fmt.Errorf("listener certificate: %w", err)
	}
	if _, err := syncBundle(ctx, client, cfg.Path(cfg.PolicyBundle)); err != nil {
		return nil, fmt.Errorf("policy bundle: %w", err)
	}
	if err := cfg.Write(cfgPath); err != nil {
		return nil, err
	}
	return LoadConfig(cfgPath)
}

// pinnedRoot fetches the CA's roots over an unauthenticated connection and
// keeps the one whose SHA-256 is in the token. Nothing secret is sent on
// that connection; everything after it verifies the CA against this root.
func pinnedRoot(ctx context.Context, tok raapi.Token) (*x509.Certificate, error) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		// The fingerprint, not the connection, authenticates what is read.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12},
	}}
	defer hc.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(tok.CAURL, "/")+"/roots.pem", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the CA root: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	certs, err := pki.ParsePEMCerts(b)
	if err != nil {
		return nil, fmt.Errorf("the CA's roots.pem: %w", err)
	}
	for _, c := range certs {
		if raapi.Fingerprint(c.Raw) == tok.RootSHA256 {
			return c, nil
		}
	}
	return nil, fmt.Errorf("the CA at %s does not present the root pinned by the token (SHA-256 %s)", tok.CAURL, tok.RootSHA256)
}

func enrollCall(ctx context.Context, tok raapi.Token, root *x509.Certificate, in raapi.EnrollRequest) (*raapi.ClientCertResponse, error) {
	pool := x509.NewCertPool()
	pool.AddCert(root)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	defer hc.CloseIdleConnections()
	b, _ := json.Marshal(in)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(tok.CAURL, "/")+raapi.Prefix+"/enroll", bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("enrolling: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var eb raapi.ErrorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
			return nil, fmt.Errorf("the CA refused the enrolment: %s", eb.Error.Detail)
		}
		return nil, fmt.Errorf("the CA refused the enrolment: %s", resp.Status)
	}
	var out raapi.ClientCertResponse
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func defaultListenerNames(host, external string) []string {
	var names []string
	add := func(n string) {
		if n == "" || (net.ParseIP(n) != nil && net.ParseIP(n).IsUnspecified()) {
			return
		}
		for _, x := range names {
			if x == n {
				return
			}
		}
		names = append(names, n)
	}
	add(strings.Trim(host, "[]"))
	if u, err := url.Parse(external); err == nil {
		add(u.Hostname())
	}
	if len(names) == 0 {
		if h, err := os.Hostname(); err == nil {
			add(h)
		}
	}
	return names
}

func newKeyFile(path string) (crypto.Signer, error) {
	k, err := pki.GenerateKey("ecdsa-p256")
	if err != nil {
		return nil, err
	}
	if err := soft.WriteKey(path, k, nil); err != nil {
		return nil, err
	}
	return k, nil
}

func tlsCert(chain []*x509.Certificate, key crypto.Signer) tls.Certificate {
	tc := tls.Certificate{PrivateKey: key, Leaf: chain[0]}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// renewListener gets a listener certificate for key from the CA and writes
// it (leaf and chain) to the configured file.
func renewListener(ctx context.Context, client *Client, cfg *Config, key crypto.Signer) error {
	tmpl := &x509.CertificateRequest{}
	for _, n := range cfg.ListenerNames {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return err
	}
	var lastErr error
	for _, p := range cfg.Provisioners {
		c, err := client.ListenerCert(ctx, csr, p.Name)
		if err != nil {
			lastErr = err
			if core.IsKind(err, core.KindRejectedIdentifier) {
				continue // another provisioner's policy may allow the names
			}
			return err
		}
		return atomicfile.Write(cfg.Path(cfg.ListenerCert), c.ChainPEM, 0o600)
	}
	return lastErr
}

// syncBundle fetches the CA's bundle into path if it changed; it reports
// whether the file was replaced. The ETag is kept beside the file.
func syncBundle(ctx context.Context, client *Client, path string) (bool, error) {
	etag, _ := os.ReadFile(path + ".etag")
	if _, err := os.Stat(path); err != nil {
		etag = nil
	}
	b, newTag, notModified, err := client.FetchBundle(ctx, string(etag))
	if err != nil || notModified {
		return false, err
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return false, err
	}
	return true, atomicfile.Write(path+".etag", []byte(newTag), 0o600)
}
