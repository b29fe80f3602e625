package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// Root is the only bundle root policyca reads; DecisionQuery is the
// document it evaluates.
const (
	Root          = "policyca"
	DecisionQuery = "data.policyca.decision"
)

// DefaultMaxBundleBytes bounds every file of a bundle, a bundle .tar.gz
// (downloaded or not) as a whole, and what its files add up to unpacked.
const DefaultMaxBundleBytes = 32 << 20

// MaxBundleEntries bounds the number of entries (files and directories) of
// a bundle .tar.gz. Policy bundles hold tens of files; OPA's tarball loader
// compares every file with every skipped directory, so a small archive of
// tens of thousands of empty entries would cost seconds to minutes of CPU.
const MaxBundleEntries = 2000

// DefaultKeyID is the key id Build puts in signatures when none is given.
const DefaultKeyID = "policyca"

// disabledBuiltins reach outside the process or make a decision depend
// on something other than the bundle and the input: the network
// (http.send, net.lookup_ip_addr, and the JSON Schema builtins, which
// fetch remote "$ref"s), the environment and configuration (opa.runtime),
// randomness (rand.intn, uuid.rfc4122, and the JWT signing builtins,
// whose signatures are random), the wall clock (the certificate
// verification builtins check validity against the process's clock, not
// the request's time). time.now_ns stays: it returns the request's time.
// Removing them from the capabilities makes a bundle that calls them fail
// to compile, with the location of the call, instead of failing at
// evaluation time.
var disabledBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime",
	"json.match_schema", "json.verify_schema", "rand.intn", "uuid.rfc4122",
	"io.jwt.encode_sign", "io.jwt.encode_sign_raw",
	"crypto.x509.parse_and_verify_certificates", "crypto.x509.parse_and_verify_certificates_with_options"}

// capabilities is this OPA version's capabilities without disabledBuiltins.
func capabilities() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(slices.Clone(c.Builtins), func(b *ast.Builtin) bool {
		return slices.Contains(disabledBuiltins, b.Name)
	})
	return c
}

// VerificationKey is a public key that may sign bundles.
type VerificationKey struct {
	// PEM is the public key (PKIX "PUBLIC KEY" block, or an RSA or EC
	// public key).
	PEM string
	// Alg is the JWS algorithm: ES256, ES384, ES512, RS256, RS384, RS512,
	// PS256, PS384 or PS512.
	Alg string
}

// verificationConfig turns keys into OPA's verification config; nil when
// no key is configured (then signatures are not checked at all).
func verificationConfig(ks map[string]VerificationKey) (*bundle.VerificationConfig, error) {
	if len(ks) == 0 {
		return nil, nil
	}
	m := make(map[string]*bundle.KeyConfig, len(ks))
	for id, k := range ks {
		alg := strings.ToUpper(k.Alg)
		if !strings.HasPrefix(alg, "ES") && !strings.HasPrefix(alg, "RS") && !strings.HasPrefix(alg, "PS") {
			// HMAC keys are refused: a shared secret in the CA's config
			// would let anyone who reads it sign policy.
			return nil, fmt.Errorf("verification key %q: algorithm %q is not allowed (use ES256 or RS256)", id, k.Alg)
		}
		kc, err := keys.NewKeyConfig(k.PEM, alg, "")
		if err != nil {
			return nil, fmt.Errorf("verification key %q: %w", id, err)
		}
		m[id] = kc
	}
	return bundle.NewVerificationConfig(m, "", "", nil), nil
}

// source is where a bundle comes from: a directory, a .tar.gz file, or
// the bytes of a .tar.gz downloaded from name.
type source struct {
	name string
	data []byte // set for downloaded bundles
}

// bundleFile reports whether a file is part of a bundle. Anything else
// (tests, READMEs, editor files) is skipped, so that a signed bundle's
// signature covers exactly what is loaded, and tests kept beside the
// policy are never evaluated in production.
func bundleFile(name string) bool {
	base := path.Base(filepath.ToSlash(name))
	switch {
	case base == ".manifest" || base == ".signatures.json":
		return true
	case strings.HasPrefix(base, "."):
		return false
	case strings.HasSuffix(base, "_test.rego"):
		return false
	case strings.HasSuffix(base, ".rego"):
		return true
	case base == "data.json" || base == "data.yaml" || base == "data.yml":
		return true
	}
	return false
}

func loaderFilter(abspath string, info fs.FileInfo, depth int) bool {
	if info.IsDir() {
		// Hidden directories (.git) are never part of a bundle; depth 0 is
		// the bundle root itself.
		return depth > 0 && strings.HasPrefix(info.Name(), ".")
	}
	return !bundleFile(abspath)
}

// readBundle reads and, when vc is set, verifies a bundle. It does not
// compile it.
func readBundle(src source, vc *bundle.VerificationConfig, maxBytes int64) (*bundle.Bundle, error) {
	b, _, err := readBundleRaw(src, vc, maxBytes)
	return b, err
}

// readBundleRaw is readBundle, and the .tar.gz the bundle was read from: the
// one downloaded, the file, or a snapshot of the directory (snapshotDir).
func readBundleRaw(src source, vc *bundle.VerificationConfig, maxBytes int64) (*bundle.Bundle, []byte, error) {
	tarball := src.data
	if tarball == nil {
		st, err := os.Stat(src.name)
		if err != nil {
			return nil, nil, err
		}
		if st.IsDir() {
			tarball, err = snapshotDir(src.name, maxBytes)
		} else {
			tarball, err = readFileLimited(src.name, maxBytes)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if err := checkUnpackedSize(tarball, maxBytes); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", src.name, err)
	}
	loader := bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(tarball), src.name).WithFilter(loaderFilter)
	r := bundle.NewCustomReader(loader).
		WithCapabilities(capabilities()).
		WithRegoVersion(ast.RegoV1).
		WithSizeLimitBytes(maxBytes).
		WithLazyLoadingMode(false)
	if vc != nil {
		r = r.WithBundleVerificationConfig(vc)
	} else {
		r = r.WithSkipBundleVerification(true)
	}
	b, err := r.Read()
	if err != nil {
		return nil, nil, locateErrors(src.name, err)
	}
	if err := checkRoots(b.Manifest); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: %w", src.name, err)
	}
	if err := validateData(b.Data); err != nil {
		return nil, nil, fmt.Errorf("bundle %s: data: %w", src.name, err)
	}
	return &b, tarball, nil
}

// readFileLimited reads a bundle .tar.gz, refusing one above maxBytes.
func readFileLimited(name string, maxBytes int64) ([]byte, error) {
	b, err := readAtMost(name, maxBytes+1)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > maxBytes {
		return nil, fmt.Errorf("bundle %s is larger than %d bytes", name, maxBytes)
	}
	return b, nil
}

// checkUnpackedSize refuses a .tar.gz whose entries add up to more than
// maxBytes once unpacked, or that has more than MaxBundleEntries entries.
// OPA's reader bounds each file, not their sum, and keeps them all (and
// their names) in memory: without this, a few megabytes of compressed
// data.json files, or of empty files with megabyte names, could unpack to
// gigabytes (a compression bomb) before any signature is checked.
func checkUnpackedSize(tarball []byte, maxBytes int64) error {
	return EachTarballEntry(bytes.NewReader(tarball), maxBytes, func(*tar.Header, io.Reader) error { return nil })
}

// EachTarballEntry calls f with every entry of the .tar.gz r and a reader
// of its content, refusing the tarball as soon as its entries add up to
// more than maxBytes, each counted with its header and names (so it never
// decompresses much more than that), or as soon as it has more than
// MaxBundleEntries entries.
func EachTarballEntry(r io.Reader, maxBytes int64, f func(h *tar.Header, content io.Reader) error) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a .tar.gz: %w", err)
	}
	tr := tar.NewReader(zr)
	var total int64
	for n := 1; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not a .tar.gz: %w", err)
		}
		if n > MaxBundleEntries {
			return fmt.Errorf("it has more than %d entries", MaxBundleEntries)
		}
		if total += h.Size + headerSize(h); h.Size < 0 || total > maxBytes {
			return fmt.Errorf("its files unpack to more than %d bytes", maxBytes)
		}
		if err := f(h, io.LimitReader(tr, h.Size)); err != nil {
			return err
		}
	}
}

// headerSize is what an entry's header costs unpacked: its 512-byte block
// and the names and extended records that may follow it (long names are
// free in the block but not in memory).
func headerSize(h *tar.Header) int64 {
	n := int64(512 + len(h.Name) + len(h.Linkname))
	for k, v := range h.PAXRecords {
		n += int64(len(k) + len(v))
	}
	return n
}

// checkRoots insists on the one root policyca owns: a bundle without a
// manifest would own all of data, and one with other roots was not
// written for policyca.
func checkRoots(m bundle.Manifest) error {
	if m.Roots == nil || len(*m.Roots) != 1 || (*m.Roots)[0] != Root {
		got := "none"
		if m.Roots != nil {
			got = fmt.Sprintf("%q", *m.Roots)
		}
		return fmt.Errorf(".manifest must declare \"roots\": [%q] (got %s)", Root, got)
	}
	return nil
}

// locateErrors makes the file names in OPA's errors point at real files:
// OPA reports module paths relative to the bundle root ("/decision.rego"),
// which an operator cannot find from the log line alone.
func locateErrors(name string, err error) error {
	var errs ast.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			if e.Location != nil && e.Location.File != "" && !strings.HasPrefix(e.Location.File, name) {
				e.Location.File = joinLocation(name, e.Location.File)
			}
		}
		hint := ""
		for _, b := range disabledBuiltins {
			if strings.Contains(errs.Error(), "undefined function "+b) {
				hint = " (policyca disables " + strings.Join(disabledBuiltins, ", ") +
					": decisions may depend only on the bundle and the input)"
				break
			}
		}
		return fmt.Errorf("bundle %s: %w%s", name, errs, hint)
	}
	return fmt.Errorf("bundle %s: %w", name, err)
}

func joinLocation(name, file string) string {
	if st, err := os.Stat(name); err == nil && st.IsDir() {
		return filepath.Join(name, filepath.FromSlash(strings.TrimPrefix(file, "/")))
	}
	return name + ":" + file
}

// indexRules rewrites the allow and deny rules of a layer (lists, or
// objects keyed by pattern) into sets of patterns, IP rules in canonical
// form (canonicalIPRule). The Rego then matches a name by intersecting a
// rule set with the name's candidate patterns (input.candidates), which
// costs O(labels) whatever the number of rules. The Rego accepts every
// form; this is only about speed. Rules holding anything but strings are
// left alone (validateLayer refuses them).
func indexRules(layer any) any {
	m, ok := layer.(map[string]any)
	if !ok {
		return layer
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, side := range []string{"allow", "deny"} {
		types, ok := m[side].(map[string]any)
		if !ok {
			if _, present := m[side]; present {
				continue
			}
			types = map[string]any{}
		}
		// Every type gets a set, empty if the layer has no rule of that
		// type, so that the Rego's rule_set never falls through to its
		// slower cases.
		nt := make(map[string]any, len(ruleTypes))
		for _, typ := range ruleTypes {
			nt[typ] = ast.NewSet()
		}
		for typ, rules := range types {
			nt[typ] = rules
			var patterns []string
			switch rs := rules.(type) {
			case []any:
				patterns = make([]string, 0, len(rs))
				for _, r := range rs {
					s, ok := r.(string)
					if !ok {
						patterns = nil
						break
					}
					patterns = append(patterns, s)
				}
				if patterns == nil {
					continue
				}
			case map[string]any:
				patterns = sortedKeys(rs)
			default:
				continue
			}
			terms := make([]*ast.Term, len(patterns))
			for i, p := range patterns {
				if typ == "ip" {
					p = canonicalIPRule(p)
				}
				terms[i] = ast.StringTerm(p)
			}
			nt[typ] = ast.NewSet(terms...)
		}
		out[side] = nt
	}
	return out
}

// indexData applies indexRules to the authority and provisioner layers.
// The result holds ast.Set values, which the store keeps as they are.
func indexData(data map[string]any) map[string]any {
	root, ok := data[Root].(map[string]any)
	if !ok {
		return data
	}
	nr := make(map[string]any, len(root))
	for k, v := range root {
		nr[k] = v
	}
	if a, ok := root["authority"]; ok {
		nr["authority"] = indexRules(a)
	}
	if ps, ok := root["provisioners"].(map[string]any); ok {
		np := make(map[string]any, len(ps))
		for name, p := range ps {
			np[name] = indexRules(p)
		}
		nr["provisioners"] = np
	}
	out := make(map[string]any, len(data))
	for k, v := range data {
		out[k] = v
	}
	out[Root] = nr
	return out
}

// compiled is one loaded bundle, ready to evaluate.
type compiled struct {
	pq rego.PreparedEvalQuery
	// fast is pq with the name rules evaluated in Go (names.go), and
	// layer and lifetime when the bundle allows (fastrules.go); nil when
	// the bundle's name rules are not the default's.
	fast *rego.PreparedEvalQuery
	// layers is what fast's layer reads from the bundle's data.
	layers atomic.Pointer[layerData]
	// goRules names the rules fast evaluates in Go.
	goRules  []string
	revision string
	name     string
	// raw is the .tar.gz the bundle was read from (as fetched, the file,
	// or a snapshot of the directory), so that the bundle in force can be
	// handed on (to RAs) as it is, signatures included.
	raw []byte
}

// compile prepares the decision query of b.
func compile(ctx context.Context, name string, b *bundle.Bundle) (*compiled, error) {
	return compileWithStore(ctx, name, b, newStore(indexData(b.Data)))
}

// newStore is the store of a bundle's (indexed) data.
func newStore(data map[string]any) storage.Store {
	return inmem.NewFromObjectWithOpts(data,
		inmem.OptRoundTripOnWrite(false),
		// The bundle data is read on every evaluation; keeping it as AST
		// values avoids converting it again for each decision.
		inmem.OptReturnASTValuesOnRead(true))
}

// compileWithStore prepares the decision query of b's modules over store.
func compileWithStore(ctx context.Context, name string, b *bundle.Bundle, store storage.Store) (*compiled, error) {
	opts := []func(*rego.Rego){
		rego.Store(store),
		rego.Capabilities(capabilities()),
		rego.SetRegoVersion(ast.RegoV1),
		// A builtin error (a bad CIDR or duration in the data) must be an
		// evaluation error, which denies, rather than an undefined
		// expression, which could silently drop a violation.
		rego.StrictBuiltinErrors(true),
	}
	mods := make([]*ast.Module, 0, len(b.Modules))
	for _, m := range b.Modules {
		mods = append(mods, m.Parsed)
	}
	pq, err := prepare(ctx, opts, mods)
	if err != nil {
		return nil, locateErrors(name, err)
	}
	c := &compiled{pq: pq, revision: b.Manifest.Revision, name: name}
	// The Go rules are used only on the bundle's own data and validated
	// account policies: a layer a Rego rule defines could hold values
	// (sets, numbers) that no validation has seen.
	if stockNameRules(mods) && layerDataIsBase(mods) {
		d, err := readLayerData(ctx, store)
		if err != nil {
			return nil, err
		}
		c.layers.Store(d)
		repl := map[string]*ast.Rule{"name_violations": fastNameRule, "layer": fastLayerRule}
		fastOpts := append(slices.Clip(opts), nameBuiltin, layerBuiltin(&c.layers))
		if stockLifetime(mods) {
			repl["lifetime"] = fastLifetimeRule
			fastOpts = append(fastOpts, lifetimeBuiltin(&c.layers))
		}
		// A bundle that compiles as written but not with these rules in Go
		// is evaluated as written.
		if fast, err := prepare(ctx, fastOpts, withRulesReplaced(mods, repl)); err == nil {
			c.fast = &fast
			c.goRules = slices.Sorted(maps.Keys(repl))
		}
	}
	return c, nil
}

// prepare compiles mods and prepares DecisionQuery.
func prepare(ctx context.Context, opts []func(*rego.Rego), mods []*ast.Module) (rego.PreparedEvalQuery, error) {
	opts = append(slices.Clip(opts), rego.Query(DecisionQuery))
	for _, m := range mods {
		opts = append(opts, rego.ParsedModule(m))
	}
	return rego.New(opts...).PrepareForEval(ctx)
}

// Build writes dir as a bundle .tar.gz to out, signed with signingKeyPEM
// (a PKCS#1, PKCS#8 or SEC 1 private key) using alg (ES256, RS256…) under
// DefaultKeyID. With no key the bundle is unsigned. Build refuses a
// directory that does not load and compile: nothing broken gets signed.
func Build(dir string, signingKeyPEM []byte, alg string, out io.Writer) error {
	return BuildWithKeyID(dir, DefaultKeyID, signingKeyPEM, alg, out)
}

// BuildWithKeyID is Build with a chosen key id, which must name the key in
// the verifying CA's VerificationKeys.
func BuildWithKeyID(dir, keyID string, signingKeyPEM []byte, alg string, out io.Writer) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("policy build: %s is not a directory", dir)
	}
	b, err := readBundle(source{name: dir}, nil, DefaultMaxBundleBytes)
	if err != nil {
		return err
	}
	if _, err := compile(context.Background(), dir, b); err != nil {
		return err
	}
	// A stale signature in the directory would not match what is written.
	b.Signatures = bundle.SignaturesConfig{}
	if len(signingKeyPEM) > 0 {
		if alg == "" {
			return errors.New("policy build: a signing key needs an algorithm (ES256, RS256…)")
		}
		sc := bundle.NewSigningConfig(string(signingKeyPEM), strings.ToUpper(alg), "")
		if err := b.GenerateSignature(sc, keyID, true); err != nil {
			return fmt.Errorf("policy build: signing: %w", err)
		}
	}
	return bundle.NewWriter(out).UseModulePath(true).DisableFormat(true).Write(*b)
}
