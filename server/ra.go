package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/eab"
	"github.com/policyca/policyca/pki"
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
// Like the ACME front end, it sees the store and the CA through the
// metrics (mst, authorityMetrics): RA-relayed issuances are counted too.
func (s *Server) mountRAAPI(ctx context.Context, cfg *config.Config, mst storeMetrics) error {
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
	s.keep(key)
	provs := map[string]raapi.ProvisionerInfo{}
	for _, p := range cfg.Provisioners {
		provs[p.Name] = raapi.ProvisionerInfo{Name: p.Name, RequireEAB: p.RequireEAB, TermsOfService: p.TermsOfService,
			Website: p.Website, CAAIdentities: p.CAAIdentities}
	}
	// The bundle in force, exactly as the CA read, verified and compiled
	// it (a directory as a snapshot of its files, signatures included):
	// never a file on disk that the CA refused or has not loaded yet.
	bundle := func(context.Context) ([]byte, error) {
		if b := s.policy.FetchedBundle(); b != nil {
			return b, nil
		}
		return nil, errors.New("no policy bundle loaded")
	}
	h, err := raapi.NewHandler(raapi.Options{
		Store: mst, Authority: authorityMetrics{s.ca, s.metrics}, Binder: &eab.Binder{Store: mst},
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
