package admin

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/policyca/policyca/pki"
	"github.com/policyca/policyca/store/sqlite"
)

// fuzzConfig is a valid configuration for the provisioners endpoint to
// add to; its bundle directory holds a data.json it updates.
const fuzzConfig = `{
  "listen": "127.0.0.1:8443",
  "tls": {"cert": "tls.pem", "key": "file:tls.key"},
  "database": {"path": "ca.db"},
  "issuer": {"cert": "int.pem", "key": "file:int.key", "root": "root.pem"},
  "policy": {"bundle": "policy"},
  "provisioners": [{"name": "acme"}]
}`

// FuzzHandler sends fuzzed bodies, path parameters and query strings to
// every endpoint of the admin API, as an admin: whatever the request, the
// answer is a success or a JSON error with a message, never a server
// error.
func FuzzHandler(f *testing.F) {
	dir := f.TempDir()
	st, err := sqlite.Open(context.Background(), filepath.Join(dir, "ca.db"), sqlite.WithSynchronous(sqlite.SyncNormal))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	cfg := filepath.Join(dir, "policyca.json")
	if err := os.WriteFile(cfg, []byte(fuzzConfig), 0o600); err != nil {
		f.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "policy"), 0o700); err != nil {
		f.Fatal(err)
	}
	data := `{"policyca": {"authority": {}, "provisioners": {"acme": {}}}}`
	if err := os.WriteFile(filepath.Join(dir, "policy", "data.json"), []byte(data), 0o600); err != nil {
		f.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	adminCA, err := pki.NewRoot(key, pkix.Name{CommonName: "admin CA"}, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	h := Handler(&Service{Store: st, ConfigPath: cfg}, adminCA, nil)
	verified := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{adminCA}}}

	// One key to aim the per-key endpoints at.
	var created NewEABKey
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, Prefix+"/eab", bytes.NewReader([]byte(`{"provisioner":"acme","reference":"r1"}`)))
	r.TLS = verified
	h.ServeHTTP(w, r)
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &created) != nil || created.KID == "" {
		f.Fatalf("add EAB key: %d %s", w.Code, w.Body)
	}

	type endpoint struct{ method, path string }
	endpoints := []endpoint{
		{http.MethodPost, "/eab"}, {http.MethodGet, "/eab"}, {http.MethodPost, "/eab/%s/revoke"},
		{http.MethodPut, "/eab/%s/policy"}, {http.MethodGet, "/decisions"},
		{http.MethodGet, "/provisioners"}, {http.MethodPost, "/provisioners"},
	}
	for i := range endpoints {
		for _, s := range []struct{ arg, query, body string }{
			{created.KID, "", `{"provisioner":"acme","reference":"x","policy":{"allow":{"dns":[".internal"]}},"expires":"24h"}`},
			{created.KID, "deactivate_account=true", `{"allow":{"dns":["a.internal"],"ip":["10.0.0.0/8"]},"deny":{"dns":["b.a.internal"]}}`},
			{"nope", "provisioner=acme", `{"name":"dev","default_lifetime":"24h"}`},
			{"", "since=2026-01-01T00:00:00Z&limit=5&denied=true&account=a", `{"name":"acme"}`},
			{"%2F..", "since=yesterday&limit=-1", `{"provisioner":"nope"}`},
			{"k", "limit=99999999999999999999", `[]`},
			{"k", "%zz", ``},
		} {
			f.Add(uint8(i), s.arg, s.query, []byte(s.body))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, arg, query string, body []byte) {
		e := endpoints[int(which)%len(endpoints)]
		// Path is the decoded path and RawPath its encoding, as the server
		// has them for a request line with the argument escaped: the
		// handler's PathValue is then the argument itself, slashes and all.
		path := Prefix + strings.Replace(e.path, "%s", url.PathEscape(arg), 1)
		r := httptest.NewRequest(e.method, "/", bytes.NewReader(body))
		r.URL.Path = Prefix + strings.Replace(e.path, "%s", arg, 1)
		r.URL.RawPath, r.URL.RawQuery = path, query
		r.TLS = verified
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code < 400 {
			return
		}
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s: server error %d: %s", e.method, path, query, w.Code, w.Body)
		}
		if w.Code == http.StatusNotFound || w.Code == http.StatusMethodNotAllowed {
			if w.Header().Get("Content-Type") != "application/json" {
				return // the router's own answer to a path that names no endpoint
			}
		}
		var eb errorBody
		if ct := w.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s: Content-Type %q for status %d: %s", e.method, path, ct, w.Code, w.Body)
		}
		if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error == "" {
			t.Fatalf("%s %s: error body %s: %v", e.method, path, w.Body, err)
		}
	})
}
