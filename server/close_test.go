package server

import (
	"context"
	"crypto"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/policyca/policyca/bootstrap"
	"github.com/policyca/policyca/config"
	"github.com/policyca/policyca/internal/testutil"
	"github.com/policyca/policyca/signer"
)

// countedKey counts the Close calls of a key (as an HSM key, which holds
// its token's sessions until closed).
type countedKey struct {
	crypto.Signer
	closed *atomic.Int32
}

func (k countedKey) Close() error { k.closed.Add(1); return nil }

// Close closes every key the server opened (issuer, TLS, RA CA), and a New
// that fails closes those it had opened.
func TestCloseClosesEveryKey(t *testing.T) {
	var opened, closed atomic.Int32
	signer.Register("counted", func(ctx context.Context, uri string) (crypto.Signer, error) {
		k, err := signer.Open(ctx, "file:"+strings.TrimPrefix(uri, "counted:"))
		if err != nil {
			return nil, err
		}
		opened.Add(1)
		return countedKey{k, &closed}, nil
	})
	res, err := bootstrap.Init(bootstrap.Options{StateDir: filepath.Join(t.TempDir(), "state"), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(res.Config)
	if err != nil {
		t.Fatal(err)
	}
	counted := func(uri string) string { return "counted:" + strings.TrimPrefix(cfg.KeyURI(uri), "file:") }
	cfg.Issuer.Key, cfg.TLS.Key = counted(cfg.Issuer.Key), counted(cfg.TLS.Key)
	cfg.RAAPI.ClientCAKey = counted(cfg.RAAPI.ClientCAKey)
	srv, err := New(context.Background(), cfg, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if opened.Load() != 3 || closed.Load() != 3 {
		t.Fatalf("%d keys opened, %d closed, want 3 and 3", opened.Load(), closed.Load())
	}
	// New fails after opening two keys: both are closed.
	opened.Store(0)
	closed.Store(0)
	cfg.RAAPI.ClientCA = filepath.Join(t.TempDir(), "missing.pem")
	if _, err := New(context.Background(), cfg, testutil.Logger(t)); err == nil {
		t.Fatal("New succeeded without the RA client CA")
	}
	if opened.Load() != closed.Load() {
		t.Fatalf("a failed New opened %d keys and closed %d", opened.Load(), closed.Load())
	}
}
