package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/policyca/policyca/admin"
	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/server"
	"github.com/policyca/policyca/signer"
)

// operatorFlags select where operator commands act: the local state
// directory (default), or a CA's admin API with --ca.
type operatorFlags struct {
	state, config          string
	caURL, cert, key, root string
}

func (f *operatorFlags) register(cmd *cobra.Command) {
	fl := cmd.PersistentFlags()
	fl.StringVar(&f.state, "state", ".policyca", "state directory of the CA (local mode)")
	fl.StringVar(&f.config, "config", "", "configuration file (default <state>/policyca.json)")
	fl.StringVar(&f.caURL, "ca", "", "base URL of a CA's admin API (https://host:port); default: act on the local state directory")
	fl.StringVar(&f.cert, "admin-cert", "", "admin client certificate (default <state>/certs/admin.pem)")
	fl.StringVar(&f.key, "admin-key", "", "admin client key URI or file (default <state>/keys/admin.key)")
	fl.StringVar(&f.root, "root", "", "root certificate the CA's TLS certificate chains to (default <state>/certs/root.pem)")
}

// api returns the operations and a function to release them.
func (f *operatorFlags) api(ctx context.Context) (admin.API, func(), error) {
	if f.caURL == "" {
		c, path, err := loadConfig(f.state, f.config)
		if err != nil {
			return nil, nil, err
		}
		st, err := server.OpenStore(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		return &admin.Service{Store: st, ConfigPath: path}, func() { st.Close() }, nil
	}
	or := func(v, def string) string {
		if v != "" {
			return v
		}
		return filepath.Join(f.state, def)
	}
	certs, err := pki.ReadPEMCerts(or(f.cert, "certs/admin.pem"))
	if err != nil {
		return nil, nil, fmt.Errorf("--admin-cert: %w", err)
	}
	keyURI := or(f.key, "keys/admin.key")
	if !strings.HasPrefix(keyURI, "file:") && !strings.HasPrefix(keyURI, "pkcs11:") {
		abs, err := filepath.Abs(keyURI)
		if err != nil {
			return nil, nil, err
		}
		keyURI = "file:" + abs
	}
	key, err := signer.Open(ctx, keyURI)
	if err != nil {
		return nil, nil, fmt.Errorf("--admin-key: %w", err)
	}
	roots, err := pki.ReadPEMCerts(or(f.root, "certs/root.pem"))
	if err != nil {
		return nil, nil, fmt.Errorf("--root: %w", err)
	}
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r)
	}
	tc := tls.Certificate{PrivateKey: key, Leaf: certs[0]}
	for _, c := range certs {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	hc := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{
			RootCAs: pool, Certificates: []tls.Certificate{tc}, MinVersion: tls.VersionTLS12,
		}},
	}
	return &admin.Client{BaseURL: f.caURL, HTTPClient: hc}, func() {}, nil
}
