package policy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{
			name: "compile error names file and line",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": x}\n",
			},
			want: []string{"policy.rego:3", "var x is unsafe"},
		},
		{
			name: "parse error names file and line",
			files: map[string]string{
				".manifest":   manifest,
				"sub/p.rego":  "package policyca\n\n\ndecision := {\n",
				"policy.rego": "package policyca\n",
			},
			want: []string{filepath.Join("sub", "p.rego") + ":5"},
		},
		{
			name: "http.send is disabled",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1/\"}).status_code == 200}\n",
			},
			want: []string{"policy.rego:3", "undefined function http.send", "policyca disables"},
		},
		{
			// It checks validity against the process's clock, not the
			// request's time.
			name: "crypto.x509.parse_and_verify_certificates is disabled",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": crypto.x509.parse_and_verify_certificates(\"x\")[0]}\n",
			},
			want: []string{"undefined function crypto.x509.parse_and_verify_certificates"},
		},
		{
			name: "net.lookup_ip_addr is disabled",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": count(net.lookup_ip_addr(\"localhost\")) > 0}\n",
			},
			want: []string{"undefined function net.lookup_ip_addr"},
		},
		{
			name: "rand.intn is disabled",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": rand.intn(\"x\", 2) == 0}\n",
			},
			want: []string{"undefined function rand.intn"},
		},
		{
			name: "json.match_schema is disabled (remote $ref)",
			files: map[string]string{
				".manifest": manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": json.match_schema(input, " +
					"{\"$ref\": \"http://127.0.0.1/s.json\"})[0]}\n",
			},
			want: []string{"undefined function json.match_schema"},
		},
		{
			name:  "manifest without roots",
			files: map[string]string{".manifest": `{"revision": "r"}`, "policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n"},
			want:  []string{`"roots": ["policyca"]`},
		},
		{
			name:  "no manifest",
			files: map[string]string{"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n"},
			want:  []string{`"roots": ["policyca"]`},
		},
		{
			name: "data with a typo",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n",
				"data.json":   `{"policyca": {"authority": {"alow": {"dns": [".internal"]}}}}`,
			},
			want: []string{"data.policyca.authority.alow: unknown field"},
		},
		{
			name: "bad CIDR in data",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n",
				"data.json":   `{"policyca": {"provisioners": {"dev": {"deny": {"ip": ["10.0.0.1/8"]}}}}}`,
			},
			want: []string{`data.policyca.provisioners["dev"].deny.ip: "10.0.0.1/8": has host bits set`},
		},
		{
			// Names are matched in normal form: these could never match.
			name: "name rules not in normal form",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n",
				"data.json":   `{"policyca": {"authority": {"deny": {"dns": ["bücher.internal"]}}}}`,
			},
			want: []string{`"bücher.internal": names are matched in normal form: write "xn--bcher-kva.internal"`},
		},
		{
			name: "fullwidth wildcard rule",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n",
				"data.json":   `{"policyca": {"authority": {"deny": {"dns": ["*.ｅｖｉｌ.internal"]}}}}`,
			},
			want: []string{`write "*.evil.internal"`},
		},
		{
			name: "IPv4-mapped address rule",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n",
				"data.json":   `{"policyca": {"authority": {"deny": {"ip": ["::ffff:10.0.0.5"]}}}}`,
			},
			want: []string{"matched as IPv4: write 10.0.0.5"},
		},
		{
			name: "IPv4-mapped prefix rule",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n",
				"data.json":   `{"policyca": {"authority": {"deny": {"ip": ["::ffff:10.9.0.0/112"]}}}}`,
			},
			want: []string{"matched as IPv4: write the IPv4 prefix 10.9.0.0/16"},
		},
		{
			name: "smoke test: undefined decision",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": true} if input.stage == \"never\"\n",
			},
			want: []string{"smoke test", "undefined"},
		},
		{
			name: "data outside the root",
			files: map[string]string{
				".manifest":   manifest,
				"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n",
				"data.json":   `{"other": {"x": 1}}`,
			},
			want: []string{"outside"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeFiles(t, tt.files)
			e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger()})
			if err == nil {
				t.Fatalf("loaded (revision %q), want an error", e.Revision())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadDirectoryAndTarball(t *testing.T) {
	var buf bytes.Buffer
	if err := Build("../policies/rego", nil, "", &buf); err != nil {
		t.Fatal(err)
	}
	tgz := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(tgz, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"../policies/rego", tgz} {
		e, err := NewEngine(EngineConfig{Path: path, Logger: quietLogger()})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if e.Revision() != "default-1" {
			t.Errorf("%s: revision %q", path, e.Revision())
		}
		d, err := e.Decide(context.Background(), orderInput("acme", "a.internal"))
		if err != nil || !d.Allow {
			t.Errorf("%s: %+v, %v", path, d, err)
		}
	}
}

// TestTarballUnpackedSizeIsBounded: a .tar.gz whose files each fit the
// per-file bound but add up to more than MaxBundleBytes (what a compression
// bomb looks like) is refused, from a file and from a URL, before OPA
// unpacks it; the same files within the bound load.
func TestTarballUnpackedSizeIsBounded(t *testing.T) {
	const limit = 64 << 10
	files := func(n int) map[string][]byte {
		fs := map[string][]byte{".manifest": []byte(manifest), "p.rego": []byte("package policyca\n\ndecision := {\"allow\": true}\n")}
		for i := range n {
			pad := strings.Repeat("x", 20<<10)
			fs[fmt.Sprintf("policyca/d%d/data.json", i)] = []byte(`{"pad":"` + pad + `"}`)
		}
		return fs
	}
	// Empty files whose names are long: free in the tar block, not in
	// memory. 40 × (512 + 2 KiB) > 64 KiB.
	longNames := files(0)
	for i := range 40 {
		longNames[fmt.Sprintf("policyca/%s%d/data.json", strings.Repeat("n", 2<<10), i)] = []byte("{}")
	}
	// More entries than MaxBundleEntries (under the default size bound,
	// which they would pass).
	many := files(0)
	for i := range MaxBundleEntries {
		many[fmt.Sprintf("policyca/e%d.json", i)] = nil
	}
	tarballs := map[string][]byte{
		"small": writeTarGz(t, files(2)), "big": writeTarGz(t, files(4)),
		"long-names": writeTarGz(t, longNames), "many": writeTarGz(t, many),
	}
	refusals := map[string]string{
		"big":        "unpack to more than 65536 bytes",
		"long-names": "unpack to more than 65536 bytes",
		"many":       fmt.Sprintf("more than %d entries", MaxBundleEntries),
	}
	limits := map[string]int64{"many": DefaultMaxBundleBytes}
	limitOf := func(name string) int64 {
		if l, ok := limits[name]; ok {
			return l
		}
		return limit
	}
	for name := range refusals {
		if n := len(tarballs[name]); int64(n) > limitOf(name)/2 {
			t.Fatalf("the test bomb %s is %d bytes compressed: it should be well below the limit", name, n)
		}
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(tarballs[strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), ".tar.gz")])
	}))
	defer srv.Close()
	dir := t.TempDir()
	for name, b := range tarballs {
		if err := os.WriteFile(filepath.Join(dir, name+".tar.gz"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name := range tarballs {
		for _, cfg := range []EngineConfig{
			{Path: filepath.Join(dir, name+".tar.gz")},
			{URL: srv.URL + "/" + name + ".tar.gz", HTTPClient: srv.Client()},
		} {
			cfg.MaxBundleBytes, cfg.Logger = limitOf(name), quietLogger()
			_, err := NewEngine(cfg)
			want, refused := refusals[name]
			switch {
			case !refused && err != nil:
				t.Errorf("%s%s: %v", cfg.Path, cfg.URL, err)
			case refused && (err == nil || !strings.Contains(err.Error(), want)):
				t.Errorf("%s%s: %v, want an error saying %q", cfg.Path, cfg.URL, err, want)
			}
		}
	}
}

func TestTestsBesideThePolicyAreNotLoaded(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		".manifest":   manifest,
		"policy.rego": "package policyca\n\ndecision := {\"allow\": true}\n",
		// Outside the root: it would make the bundle invalid if loaded.
		"policy_test.rego": "package other_test\n\ntest_x if true\n",
		".git/config":      "not a bundle file",
		"README.md":        "notes",
	})
	if _, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger()}); err != nil {
		t.Fatal(err)
	}
}

func genKey(t testing.TB) (privPEM, pubPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

// tamper rewrites one file inside a bundle .tar.gz.
func tamper(t *testing.T, tgz []byte, name, content string) []byte {
	t.Helper()
	files := readTarGz(t, tgz)
	if _, ok := files[name]; !ok {
		t.Fatalf("%s not in bundle (have %v)", name, files)
	}
	files[name] = []byte(content)
	return writeTarGz(t, files)
}

func TestSignedBundles(t *testing.T) {
	priv, pub := genKey(t)
	_, otherPub := genKey(t)
	var signed, unsigned bytes.Buffer
	if err := Build("../policies/rego", []byte(priv), "ES256", &signed); err != nil {
		t.Fatal(err)
	}
	if err := Build("../policies/rego", nil, "", &unsigned); err != nil {
		t.Fatal(err)
	}
	keys := map[string]VerificationKey{DefaultKeyID: {PEM: pub, Alg: "ES256"}}
	tests := []struct {
		name    string
		bundle  []byte
		keys    map[string]VerificationKey
		wantErr string
	}{
		{"signed, verified", signed.Bytes(), keys, ""},
		{"signed, verification off", signed.Bytes(), nil, ""},
		{"unsigned refused", unsigned.Bytes(), keys, "missing .signatures.json"},
		{"wrong key refused", signed.Bytes(), map[string]VerificationKey{DefaultKeyID: {PEM: otherPub, Alg: "ES256"}}, "verify"},
		{"unknown key id refused", signed.Bytes(), map[string]VerificationKey{"other": {PEM: pub, Alg: "ES256"}}, "not found"},
		{"tampered data refused", tamper(t, signed.Bytes(), "data.json", `{"policyca": {"authority": {}, "provisioners": {"acme": {}}}}`), keys, "digest mismatch"},
		{"tampered policy refused", tamper(t, signed.Bytes(), "lifetime.rego", "package policyca\n"), keys, "digest mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "b.tar.gz")
			if err := os.WriteFile(p, tt.bundle, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := NewEngine(EngineConfig{Path: p, VerificationKeys: tt.keys, Logger: quietLogger()})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerificationKeyConfig(t *testing.T) {
	_, pub := genKey(t)
	for _, alg := range []string{"HS256", "none"} {
		_, err := NewEngine(EngineConfig{Path: "../policies/rego", Logger: quietLogger(),
			VerificationKeys: map[string]VerificationKey{"k": {PEM: pub, Alg: alg}}})
		if err == nil {
			t.Errorf("%s accepted", alg)
		}
	}
}

func TestBuildRefusesBrokenPolicy(t *testing.T) {
	priv, _ := genKey(t)
	dir := writeFiles(t, map[string]string{".manifest": manifest, "p.rego": "package policyca\n\ndecision := y\n"})
	var out bytes.Buffer
	if err := Build(dir, []byte(priv), "ES256", &out); err == nil || out.Len() != 0 {
		t.Fatalf("Build: %v, %d bytes written", err, out.Len())
	}
	if err := Build("../policies/rego", []byte(priv), "", &out); err == nil {
		t.Fatal("signing without an algorithm accepted")
	}
}

func TestReloadKeepsLastGood(t *testing.T) {
	dir := policyBundle(t, "good-1", `{"allow": true}`)
	var mu sync.Mutex
	var loads []error
	e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger(), OnLoad: func(_ string, _ bool, err error) {
		mu.Lock()
		loads = append(loads, err)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		decision, revision string
		wantRev            string
		wantErr            bool
		wantFailures       uint64
	}{
		{`{"allow": input.nope}`, "broken-smoke", "good-1", true, 1},
		{`{"allow": `, "broken-parse", "good-1", true, 2},
		{`{"allow": false}`, "good-2", "good-2", false, 2},
	}
	for _, s := range steps {
		if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte("package policyca\n\ndecision := "+s.decision+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".manifest"), []byte(`{"revision": "`+s.revision+`", "roots": ["policyca"]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		err := e.Reload(ctx)
		if (err != nil) != s.wantErr {
			t.Fatalf("%s: Reload error %v", s.revision, err)
		}
		h := e.Health()
		rev, lastErr, lastLoad := h.Revision, h.LastErr, h.LastLoad
		if rev != s.wantRev || e.Revision() != s.wantRev || (lastErr != nil) != s.wantErr || lastLoad.IsZero() {
			t.Fatalf("%s: health %q %v %v", s.revision, rev, lastErr, lastLoad)
		}
		if e.LoadFailures() != s.wantFailures {
			t.Fatalf("%s: %d failures", s.revision, e.LoadFailures())
		}
		// The last good bundle keeps deciding.
		d, err := e.Decide(ctx, orderInput("acme", "a.internal"))
		if err != nil || d.Revision != s.wantRev {
			t.Fatalf("%s: decision %+v, %v", s.revision, d, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(loads) != 4 || loads[0] != nil || loads[1] == nil || loads[3] != nil {
		t.Fatalf("OnLoad calls: %v", loads)
	}
}

func TestWatchPath(t *testing.T) {
	dir := policyBundle(t, "w-1", `{"allow": true}`)
	e, err := NewEngine(EngineConfig{Path: dir, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.poll1(ctx) // unchanged: nothing happens
	if at := e.Health().LastLoad; e.LoadFailures() != 0 || e.Revision() != "w-1" || at.IsZero() {
		t.Fatal("unexpected reload")
	}
	writeManifest := func(rev string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, ".manifest"), []byte(`{"revision": "`+rev+`", "roots": ["policyca"]}`), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeManifest("w-2")
	e.poll1(ctx)
	if e.Revision() != "w-2" {
		t.Fatalf("revision %q after change", e.Revision())
	}
	// A broken change is tried once, not on every tick.
	if err := os.WriteFile(filepath.Join(dir, "policy.rego"), []byte("package policyca\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.poll1(ctx)
	e.poll1(ctx)
	if e.LoadFailures() != 1 || e.Revision() != "w-2" {
		t.Fatalf("failures %d, revision %q", e.LoadFailures(), e.Revision())
	}
	// Watch stops with its context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.Watch(cctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch: %v", err)
	}
}

func TestURLBundleWithETag(t *testing.T) {
	var b1, b2 bytes.Buffer
	if err := Build(policyBundle(t, "u-1", `{"allow": true}`), nil, "", &b1); err != nil {
		t.Fatal(err)
	}
	if err := Build(policyBundle(t, "u-2", `{"allow": true}`), nil, "", &b2); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	current, etag := b1.Bytes(), `"v1"`
	var got200, got304 int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.Header.Get("If-None-Match") == etag {
			got304++
			w.WriteHeader(http.StatusNotModified)
			return
		}
		got200++
		w.Header().Set("ETag", etag)
		_, _ = w.Write(current)
	}))
	defer srv.Close()
	e, err := NewEngine(EngineConfig{URL: srv.URL + "/bundle.tar.gz", HTTPClient: srv.Client(), Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.poll1(ctx)
	if e.Revision() != "u-1" || got200 != 1 || got304 != 1 {
		t.Fatalf("revision %q, %d×200, %d×304", e.Revision(), got200, got304)
	}
	mu.Lock()
	current, etag = b2.Bytes(), `"v2"`
	mu.Unlock()
	e.poll1(ctx)
	if e.Revision() != "u-2" || got200 != 2 {
		t.Fatalf("revision %q, %d×200", e.Revision(), got200)
	}
	// A broken download is refused and the last good bundle stays.
	mu.Lock()
	current, etag = []byte("not a tarball"), `"v3"`
	mu.Unlock()
	if err := e.Reload(ctx); err == nil || e.Revision() != "u-2" || e.LoadFailures() != 1 {
		t.Fatalf("Reload: %v, revision %q", err, e.Revision())
	}
	// What is handed on (to RAs) is the bundle in force, not the refused one.
	if !bytes.Equal(e.FetchedBundle(), b2.Bytes()) {
		t.Fatal("FetchedBundle is not the bundle in force")
	}
	// The server publishes the bundle in force again: its 304 ends the
	// failure that health reports.
	if e.Health().LastErr == nil {
		t.Fatal("no error reported after the broken download")
	}
	mu.Lock()
	current, etag = b2.Bytes(), `"v2"`
	mu.Unlock()
	if err := e.Reload(ctx); err != nil || e.Health().LastErr != nil {
		t.Fatalf("after a 304: %v, health %v", err, e.Health().LastErr)
	}
}

// A bundle URL is followed to https only; and a 304 to a request that
// named no bundle is not a bundle.
func TestURLBundleRefusals(t *testing.T) {
	var b bytes.Buffer
	if err := Build(policyBundle(t, "plain", `{"allow": true}`), nil, "", &b); err != nil {
		t.Fatal(err)
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(b.Bytes()) }))
	defer plain.Close()
	redirect := httptest.NewTLSServer(http.RedirectHandler(plain.URL+"/bundle.tar.gz", http.StatusFound))
	defer redirect.Close()
	_, err := NewEngine(EngineConfig{URL: redirect.URL + "/bundle.tar.gz", HTTPClient: redirect.Client(), Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "not https") {
		t.Fatalf("bundle redirected to http: %v", err)
	}
	// Credentials in the URL (user info, query) are in no error.
	down := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	secretURL := strings.Replace(down.URL, "https://", "https://ops:HUNTER2@", 1) + "/b.tar.gz?private_token=GLPAT-SECRET"
	_, err = NewEngine(EngineConfig{URL: secretURL, HTTPClient: down.Client(), Logger: quietLogger()})
	if err == nil || strings.Contains(err.Error(), "HUNTER2") || strings.Contains(err.Error(), "GLPAT") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("bundle server down, credentials in the URL: %v", err)
	}
	down.Close()
	_, err = NewEngine(EngineConfig{URL: secretURL, HTTPClient: down.Client(), Logger: quietLogger()})
	if err == nil || strings.Contains(err.Error(), "HUNTER2") || strings.Contains(err.Error(), "GLPAT") {
		t.Fatalf("bundle server unreachable, credentials in the URL: %v", err)
	}
	notModified := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotModified)
	}))
	defer notModified.Close()
	_, err = NewEngine(EngineConfig{URL: notModified.URL + "/bundle.tar.gz", HTTPClient: notModified.Client(), Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "without If-None-Match") {
		t.Fatalf("304 at start: %v", err)
	}
}

func TestEngineConfigErrors(t *testing.T) {
	for _, cfg := range []EngineConfig{
		{},
		{Path: "../policies/rego", URL: "http://127.0.0.1/"},
		{Path: filepath.Join(t.TempDir(), "missing")},
	} {
		cfg.Logger = quietLogger()
		if _, err := NewEngine(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
