package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/eab"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/policy"
	"github.com/policyca/policyca/raapi"
	"github.com/policyca/policyca/signer"
)

// trustClientCA adds a client-certificate root (the admin CA, the RA CA) to
// the listener. Client certificates are asked for, not required: ACME
// clients have none, and each API checks that the chain ends at its own CA.
func (s *Server) trustClientCA(c *x509.Certificate) {
	if s.tlsCfg.ClientCAs == nil {
		s.tlsCfg.ClientCAs = x509.NewCertPool()
	}
	s.tlsCfg.ClientCAs.AddCert(c)
	s.tlsCfg.ClientAuth = tls.VerifyClientCertIfGiven
}

// mountRAAPI serves /ra/v1/ for the registration authorities (docs/ra.md).
func (s *Server) mountRAAPI(ctx context.Context, cfg *config.Config) error {
	if cfg.RAAPI == nil {
		return nil
	}
	cas, err := pki.ReadPEMCerts(cfg.Path(cfg.RAAPI.ClientCA))
	if err != nil {
		return fmt.Errorf("ra_api.client_ca: %w", err)
	}
	key, err := signer.Open(ctx, cfg.KeyURI(cfg.RAAPI.ClientCAKey))
	if err != nil {
		return fmt.Errorf("ra_api.client_ca_key: %w", err)
	}
	provs := map[string]raapi.ProvisionerInfo{}
	for _, p := range cfg.Provisioners {
		provs[p.Name] = raapi.ProvisionerInfo{Name: p.Name, RequireEAB: p.RequireEAB, TermsOfService: p.TermsOfService,
			Website: p.Website, CAAIdentities: p.CAAIdentities}
	}
	var bundle raapi.BundleSource
	if cfg.Policy.URL != "" {
		// The bundle in force, exactly as the CA fetched and verified it.
		bundle = func(context.Context) ([]byte, error) {
			if b := s.policy.FetchedBundle(); b != nil {
				return b, nil
			}
			return nil, errors.New("no policy bundle fetched yet")
		}
	}
	if cfg.Policy.Bundle != "" {
		bundle = bundleFile(cfg.Path(cfg.Policy.Bundle))
	}
	h, err := raapi.NewHandler(raapi.Options{
		Store: s.store, Authority: s.ca, Binder: &eab.Binder{Store: s.store},
		ClientCA: cas[0], ClientCASigner: key, CertLifetime: cfg.RAAPI.CertLifetime.D(),
		Provisioners: provs, Bundle: bundle, Logger: s.log,
	})
	if err != nil {
		return err
	}
	s.trustClientCA(cas[0])
	s.mux.Handle(raapi.Prefix+"/", h)
	return nil
}

// bundleFile serves the configured bundle: a .tar.gz as it is (signatures
// included), a directory packed as an unsigned .tar.gz.
func bundleFile(path string) raapi.BundleSource {
	return func(ctx context.Context) ([]byte, error) {
		if strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".tgz") {
			return os.ReadFile(path)
		}
		var buf bytes.Buffer
		if err := policy.Build(path, nil, "", &buf); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
}
